//! The parts of a CNI ADD result (spec section 5.1) peapod reads.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CniResult {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub sandbox: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct IpConfig {
    /// CIDR notation, e.g. `10.89.0.5/16`.
    pub address: String,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Route {
    pub dst: String,
    #[serde(default)]
    pub gw: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Dns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub search: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

impl CniResult {
    /// The addresses (without prefix length) assigned inside the sandbox.
    pub fn addresses(&self) -> Vec<String> {
        self.ips
            .iter()
            .filter(|ip| {
                ip.interface.is_none_or(|i| {
                    self.interfaces
                        .get(i)
                        .is_none_or(|iface| !iface.sandbox.is_empty())
                })
            })
            .map(|ip| ip.address.split('/').next().unwrap_or_default().to_string())
            .collect()
    }
}
