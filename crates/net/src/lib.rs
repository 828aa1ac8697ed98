//! peapod's networking layer: named network namespaces bind-mounted under a
//! runtime directory ([`netns`]), CNI plugin invocation per the CNI spec
//! ([`cni`]) and the default bridge network ([`defaults`]).

pub mod cni;
pub mod defaults;
pub mod netns;

pub use cni::{CniError, CniResult, CniRuntime, NetworkConfigList, RuntimeConf};
pub use defaults::BridgeNetwork;
pub use netns::{NetnsDir, NetnsError};
