//! The default bridge network: a `peapod0` bridge on 10.89.0.0/16 (podman
//! uses 10.88.0.0/16) with host-local IPAM, outbound NAT, and the portmap
//! (`-p`) and firewall plugins.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cni::{CniError, NetworkConfigList};

/// Where the engine keeps its network config lists.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/peapod/cni/net.d";
pub const DEFAULT_NETWORK: &str = "peapod";
pub const DEFAULT_BRIDGE: &str = "peapod0";
pub const DEFAULT_SUBNET: &str = "10.89.0.0/16";

/// A bridge network as peapod creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNetwork {
    pub name: String,
    /// Host bridge device (at most 15 bytes).
    pub bridge: String,
    /// IPv4 subnet in CIDR notation.
    pub subnet: String,
    /// host-local's lease directory; `None` = its default /var/lib/cni/networks.
    pub ipam_data_dir: Option<PathBuf>,
}

impl Default for BridgeNetwork {
    fn default() -> Self {
        Self {
            name: DEFAULT_NETWORK.into(),
            bridge: DEFAULT_BRIDGE.into(),
            subnet: DEFAULT_SUBNET.into(),
            ipam_data_dir: None,
        }
    }
}

impl BridgeNetwork {
    /// The CNI config list of this network.
    pub fn conflist(&self) -> Value {
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [[{ "subnet": self.subnet }]],
            "routes": [{ "dst": "0.0.0.0/0" }],
        });
        if let Some(dir) = &self.ipam_data_dir {
            ipam["dataDir"] = json!(dir);
        }
        json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": ipam,
                },
                // snat (portmap's default, made explicit): published ports
                // answer on the host's 127.0.0.1 too (portmap then sets
                // route_localnet on the bridge and masquerades hairpin and
                // localhost traffic).
                { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
                { "type": "firewall" },
            ],
        })
    }

    pub fn config_list(&self) -> Result<NetworkConfigList, CniError> {
        NetworkConfigList::from_value(self.conflist())
    }

    /// Write `DIR/NAME.conflist` atomically; returns its path.
    pub fn write(&self, config_dir: &Path) -> Result<PathBuf, CniError> {
        let path = config_path(config_dir, &self.name);
        let io_err = |source| CniError::Io {
            what: "write network config",
            path: path.clone(),
            source,
        };
        fs::create_dir_all(config_dir).map_err(io_err)?;
        let tmp = config_dir.join(format!(".{}.conflist.tmp", self.name));
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&self.conflist()).expect("JSON serializes"))?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(config_dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err(e)
        })?;
        Ok(path)
    }
}

/// The list that brings `lo` up in a namespace (every netns needs it, also
/// `--network none`); run with ifname `lo`.
pub fn loopback() -> NetworkConfigList {
    NetworkConfigList::from_value(json!({
        "cniVersion": "1.0.0",
        "name": "peapod-lo",
        "plugins": [{ "type": "loopback" }],
    }))
    .expect("the loopback list is valid")
}

/// The file holding network `name`'s config list.
pub fn config_path(config_dir: &Path, name: &str) -> PathBuf {
    config_dir.join(format!("{name}.conflist"))
}

/// Write the default network's config list unless one exists; its path.
pub fn ensure_default_network(config_dir: &Path) -> Result<PathBuf, CniError> {
    let path = config_path(config_dir, DEFAULT_NETWORK);
    if path.exists() {
        return Ok(path);
    }
    BridgeNetwork::default().write(config_dir)
}

/// Load network `name` from `config_dir`.
pub fn load_network(config_dir: &Path, name: &str) -> Result<NetworkConfigList, CniError> {
    if !crate::cni::valid_network_name(name) {
        return Err(CniError::BadConfig {
            file: None,
            msg: format!("invalid network name {name:?}"),
        });
    }
    NetworkConfigList::from_file(&config_path(config_dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = ensure_default_network(dir.path()).unwrap();
        assert_eq!(path, dir.path().join("peapod.conflist"));
        let list = load_network(dir.path(), "peapod").unwrap();
        assert_eq!(list.name, "peapod");
        let types: Vec<_> = (0..list.plugins.len())
            .map(|i| list.plugin_type(i))
            .collect();
        assert_eq!(types, ["bridge", "portmap", "firewall"]);
        assert_eq!(list.plugins[0]["bridge"], "peapod0");
        assert_eq!(list.plugins[0]["ipMasq"], true);
        assert_eq!(list.plugins[1]["snat"], true);
        assert_eq!(
            list.plugins[0]["ipam"]["ranges"][0][0]["subnet"],
            "10.89.0.0/16"
        );
    }
}
