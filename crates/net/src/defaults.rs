//! The default bridge network: a `peapod0` bridge on 10.89.0.0/16 (podman
//! uses 10.88.0.0/16) with host-local IPAM and the portmap (`-p`) plugin.
//! Outbound NAT and FORWARD accept rules are not the plugins' (the bridge
//! plugin's `ipMasq` and the firewall plugin add rules per container on every
//! attach): peapod installs them once per network ([`crate::host_rules`]),
//! which the config list says with `"peapod": {"hostRules": true}`.

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
/// The config list's key for peapod's own settings (CNI ignores it).
pub const META_KEY: &str = "peapod";
/// Under [`META_KEY`]: peapod installs the network's host rules.
const HOST_RULES_KEY: &str = "hostRules";

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
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": ipam,
                },
                // snat (portmap's default, made explicit): published ports
                // answer on the host's 127.0.0.1 too (portmap then sets
                // route_localnet on the bridge and masquerades hairpin and
                // localhost traffic).
                { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
            ],
            META_KEY: { HOST_RULES_KEY: true },
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

/// Whether peapod installs network `list`'s host rules (NAT, FORWARD).
pub fn wants_host_rules(list: &NetworkConfigList) -> bool {
    list.raw
        .get(META_KEY)
        .and_then(|m| m.get(HOST_RULES_KEY))
        .and_then(Value::as_bool)
        == Some(true)
}

/// The default network's config list as earlier peapods wrote it (NAT by
/// the bridge plugin, the firewall plugin), to recognize an unedited one.
fn old_default_conflist() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": DEFAULT_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": DEFAULT_BRIDGE,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": DEFAULT_SUBNET }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true },
            { "type": "firewall" },
        ],
    })
}

/// The file holding network `name`'s config list.
pub fn config_path(config_dir: &Path, name: &str) -> PathBuf {
    config_dir.join(format!("{name}.conflist"))
}

/// Write the default network's config list unless one exists; its path. One
/// that is exactly what an older peapod wrote is rewritten to the current
/// shape; any other (edited by hand) is left as it is.
pub fn ensure_default_network(config_dir: &Path) -> Result<PathBuf, CniError> {
    let path = config_path(config_dir, DEFAULT_NETWORK);
    match fs::read(&path) {
        Ok(bytes) => {
            let old =
                serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| v == old_default_conflist());
            if !old {
                return Ok(path);
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(CniError::Io {
                what: "read network config",
                path,
                source,
            });
        }
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
        assert_eq!(types, ["bridge", "portmap"]);
        assert_eq!(list.plugins[0]["bridge"], "peapod0");
        assert_eq!(list.plugins[0]["ipMasq"], false);
        assert!(wants_host_rules(&list));
        assert_eq!(list.plugins[1]["snat"], true);
        assert_eq!(
            list.plugins[0]["ipam"]["ranges"][0][0]["subnet"],
            "10.89.0.0/16"
        );
    }

    #[test]
    fn an_unedited_old_default_is_migrated_and_an_edited_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = config_path(dir.path(), DEFAULT_NETWORK);
        let old = serde_json::to_vec_pretty(&old_default_conflist()).unwrap();
        fs::write(&path, &old).unwrap();
        ensure_default_network(dir.path()).unwrap();
        let now: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(now, BridgeNetwork::default().conflist());

        let mut edited = old_default_conflist();
        edited["plugins"][0]["ipam"]["ranges"][0][0]["subnet"] = json!("10.77.0.0/16");
        let edited = serde_json::to_vec_pretty(&edited).unwrap();
        fs::write(&path, &edited).unwrap();
        ensure_default_network(dir.path()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), edited);
        let list = load_network(dir.path(), DEFAULT_NETWORK).unwrap();
        assert!(!wants_host_rules(&list));
    }
}
