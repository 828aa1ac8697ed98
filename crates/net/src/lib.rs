//! peapod's networking layer: named network namespaces bind-mounted under a
//! runtime directory ([`netns`]), CNI plugin invocation per the CNI spec
//! ([`cni`]), the default bridge network ([`defaults`]) and the host firewall
//! rules peapod installs once per bridge network ([`host_rules`]).

pub mod cni;
pub mod defaults;
pub mod host_rules;
pub mod netns;

pub use cni::{CniError, CniResult, CniRuntime, NetworkConfigList, RuntimeConf};
pub use defaults::BridgeNetwork;
pub use host_rules::{HostRules, HostRulesError};
pub use netns::{NetnsDir, NetnsError};
