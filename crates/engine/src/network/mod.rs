//! The engine's networks: bridge networks as CNI config lists (one per
//! network in [`Paths::cni_config`], host-wide like their bridges and
//! host-local leases), and containers' attachments to them: a network
//! namespace under [`Paths::netns`] (made with `lo` up), CNI ADD with
//! published ports, and a result cache under [`Paths::cni_cache`] (per engine
//! root, so independent engines never clean up each other's attachments)
//! from which DEL works after a crash. A network's NAT and FORWARD rules are
//! installed once, on its first attach since boot ([`rules_marker`]), and
//! removed with it.

mod ports;
mod reconcile;
mod rules_marker;
mod store;
mod subnet;

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use peapod_net::cni::{CachedAttachment, CniError, CniResult, CniRuntime, RuntimeConf};
use peapod_net::defaults;
use peapod_net::netns::is_mount_point;
use peapod_net::{
    BridgeNetwork, HostRules, HostRulesError, NetnsDir, NetnsError, NetworkConfigList,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::paths::Paths;
use crate::request::PortMapping;
use subnet::Ipv4Net;

pub use peapod_net::cni::DEFAULT_PLUGIN_DIR;
pub use peapod_net::defaults::DEFAULT_NETWORK;

/// The name of the loopback list older versions ran in every namespace
/// (reserved; their cached attachments are still detached).
const LOOPBACK_NETWORK: &str = "peapod-lo";

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network {0:?} not found: create it with `peapod network create {0}`")]
    NotFound(String),
    #[error("network {0:?} already exists: pick another name or remove it first")]
    Exists(String),
    #[error(
        "invalid network name {0:?}: use letters, digits, '_', '.', '-', starting with a letter or digit"
    )]
    InvalidName(String),
    #[error("invalid bridge name {0:?}: use at most 15 of [A-Za-z0-9_.-]")]
    InvalidBridge(String),
    #[error("bridge {bridge} is already used by network {network:?}: pick another bridge")]
    BridgeTaken { bridge: String, network: String },
    #[error("invalid subnet {subnet:?}: {msg}")]
    InvalidSubnet { subnet: String, msg: String },
    #[error("invalid gateway {gateway:?}: {msg}")]
    InvalidGateway { gateway: String, msg: String },
    #[error("subnet {subnet} overlaps {other}: pick another --subnet")]
    SubnetOverlap { subnet: String, other: String },
    #[error("no free subnet left in 10.90.0.0-10.255.0.0 (/16s): give one with --subnet")]
    NoFreeSubnet,
    #[error("the default network {0:?} cannot be removed")]
    RemoveDefault(String),
    #[error("network {network:?} is in use by {}: stop and remove them first", users.join(", "))]
    InUse { network: String, users: Vec<String> },
    #[error("CNI plugin {plugin:?} not found in {dirs}: install containernetworking-plugins")]
    PluginMissing { plugin: String, dirs: String },
    #[error("port {port}/{protocol} is already in use on the host: pick another host port")]
    PortInUse { port: u16, protocol: &'static str },
    #[error("{0}")]
    BadPort(String),
    #[error("container {id} is already attached to network {network:?}: detach it first")]
    AlreadyAttached { id: String, network: String },
    #[error("invalid container id {0:?} for a network namespace: use [A-Za-z0-9_.-]")]
    InvalidId(String),
    #[error("{what}: {source}")]
    Cni {
        what: String,
        #[source]
        source: Box<CniError>,
    },
    #[error("host rules of network {network:?}: {source}")]
    HostRules {
        network: String,
        #[source]
        source: HostRulesError,
    },
    #[error(
        "network {0:?} has no IPv4 subnet for its host rules: give its bridge plugin an ipam range"
    )]
    NoSubnet(String),
    #[error("network namespace: {0}")]
    Netns(#[from] NetnsError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl NetworkError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> NetworkError {
        let path = path.to_path_buf();
        move |source| NetworkError::Io { what, path, source }
    }

    fn cni(what: impl Into<String>) -> impl FnOnce(CniError) -> NetworkError {
        let what = what.into();
        move |source| NetworkError::Cni {
            what,
            source: Box::new(source),
        }
    }
}

/// `peapod network create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkCreate {
    pub name: String,
    /// IPv4 CIDR; a free one is picked when not given.
    pub subnet: Option<String>,
    /// Defaults to the subnet's first address.
    pub gateway: Option<String>,
    /// Host bridge device; `peapodN` when not given.
    pub bridge: Option<String>,
}

/// What `network ls` and `network inspect` show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub name: String,
    pub driver: String,
    pub subnet: String,
    pub gateway: String,
    pub bridge: String,
    /// RFC 3339.
    pub created: String,
}

/// One container's attachment to one network (kept in its record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub netns: PathBuf,
    pub ip: Option<IpAddr>,
    pub prefix_len: Option<u8>,
    pub gateway: Option<IpAddr>,
    pub mac: Option<String>,
    /// As published: host port 0 replaced by the port chosen.
    pub ports: Vec<PortMapping>,
}

/// The engine's networks and attachments.
#[derive(Debug, Clone)]
pub struct Networks {
    config_dir: PathBuf,
    netns: NetnsDir,
    cni: CniRuntime,
    /// Markers of networks whose host rules are in place.
    markers: PathBuf,
    /// Serializes this engine's attach/detach (port checks, cache).
    attach_lock: PathBuf,
}

impl Networks {
    pub fn new(paths: &Paths) -> Self {
        Networks {
            config_dir: paths.cni_config.clone(),
            netns: NetnsDir::new(paths.netns()),
            cni: CniRuntime::new(vec![PathBuf::from(DEFAULT_PLUGIN_DIR)], paths.cni_cache()),
            markers: paths.network_markers(),
            attach_lock: paths.root.join("cni").join("attach.lock"),
        }
    }

    /// Look for plugins in `dirs` instead of /usr/lib/cni.
    pub fn with_plugin_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.cni.plugin_dirs = dirs;
        self
    }

    /// Write the default network's config list if missing.
    pub fn ensure_default(&self) -> Result<(), NetworkError> {
        let _lock = self.config_lock()?;
        defaults::ensure_default_network(&self.config_dir)
            .map_err(NetworkError::cni("write the default network's config"))?;
        Ok(())
    }

    fn config_lock(&self) -> Result<store::Lock, NetworkError> {
        store::lock(&self.config_dir.join(".peapod-networks.lock"))
    }

    pub fn create(&self, req: &NetworkCreate) -> Result<NetworkInfo, NetworkError> {
        let name = req.name.as_str();
        if !peapod_net::cni::valid_network_name(name) || name.len() > 64 {
            return Err(NetworkError::InvalidName(name.to_string()));
        }
        if name == LOOPBACK_NETWORK {
            return Err(NetworkError::Exists(name.to_string()));
        }
        let _lock = self.config_lock()?;
        let existing = store::load_all(&self.config_dir)?;
        if existing.iter().any(|(l, _)| l.name == name)
            || defaults::config_path(&self.config_dir, name).exists()
        {
            return Err(NetworkError::Exists(name.to_string()));
        }
        let bridge = match &req.bridge {
            Some(b) => {
                if !valid_bridge(b) {
                    return Err(NetworkError::InvalidBridge(b.clone()));
                }
                if let Some((l, _)) = existing.iter().find(|(l, _)| store::bridge_of(l) == *b) {
                    return Err(NetworkError::BridgeTaken {
                        bridge: b.clone(),
                        network: l.name.clone(),
                    });
                }
                b.clone()
            }
            None => {
                let used: BTreeSet<String> =
                    existing.iter().map(|(l, _)| store::bridge_of(l)).collect();
                (1..10_000)
                    .map(|n| format!("peapod{n}"))
                    .find(|b| !used.contains(b) && !link_exists(b))
                    .ok_or_else(|| NetworkError::InvalidBridge("peapodN".into()))?
            }
        };
        let mut taken: Vec<(Ipv4Net, String)> = existing
            .iter()
            .filter_map(|(l, _)| Some((store::subnet_of(l)?, format!("network {:?}", l.name))))
            .collect();
        // The default network's range stays reserved before it is written.
        if !existing.iter().any(|(l, _)| l.name == DEFAULT_NETWORK)
            && let Ok(net) = defaults::DEFAULT_SUBNET.parse()
        {
            taken.push((net, format!("network {DEFAULT_NETWORK:?}")));
        }
        // Routes through our own (leftover) bridge are no conflict.
        let routes: Vec<(Ipv4Net, String)> = subnet::host_routes()
            .into_iter()
            .filter(|(_, dev)| *dev != bridge)
            .map(|(n, dev)| (n, format!("the host route {n} dev {dev}")))
            .collect();
        let subnet = match &req.subnet {
            Some(s) => {
                let net: Ipv4Net = s.parse().map_err(|msg| NetworkError::InvalidSubnet {
                    subnet: s.clone(),
                    msg,
                })?;
                if let Some((_, other)) =
                    taken.iter().chain(&routes).find(|(n, _)| n.overlaps(&net))
                {
                    return Err(NetworkError::SubnetOverlap {
                        subnet: net.to_string(),
                        other: other.clone(),
                    });
                }
                net
            }
            None => (90..=255u8)
                .filter_map(|b| Ipv4Net::new(Ipv4Addr::new(10, b, 0, 0), 16))
                .find(|net| !taken.iter().chain(&routes).any(|(n, _)| n.overlaps(net)))
                .ok_or(NetworkError::NoFreeSubnet)?,
        };
        let gateway = match &req.gateway {
            None => None,
            Some(g) => {
                let bad = |msg: &str| NetworkError::InvalidGateway {
                    gateway: g.clone(),
                    msg: msg.to_string(),
                };
                let ip: Ipv4Addr = g.parse().map_err(|_| bad("not an IPv4 address"))?;
                let bcast = Ipv4Addr::from(u32::from(subnet.addr) | (u32::MAX >> subnet.prefix));
                if !subnet.contains(ip) || ip == subnet.addr || ip == bcast {
                    return Err(bad(&format!("must be a host address in {subnet}")));
                }
                Some(ip)
            }
        };
        let mut conflist = BridgeNetwork {
            name: name.to_string(),
            bridge,
            subnet: subnet.to_string(),
            ipam_data_dir: None,
        }
        .conflist();
        if let Some(gw) = gateway {
            conflist["plugins"][0]["ipam"]["ranges"][0][0]["gateway"] = json!(gw.to_string());
        }
        store::stamp(&mut conflist, SystemTime::now());
        let list = NetworkConfigList::from_value(conflist.clone())
            .map_err(NetworkError::cni(format!("network {name:?}")))?;
        let path = store::write(&self.config_dir, name, &conflist)?;
        Ok(store::info(&list, &path))
    }

    pub fn list(&self) -> Result<Vec<NetworkInfo>, NetworkError> {
        Ok(store::load_all(&self.config_dir)?
            .iter()
            .map(|(l, p)| store::info(l, p))
            .collect())
    }

    pub fn inspect(&self, name: &str) -> Result<NetworkInfo, NetworkError> {
        let (list, path) = self.load(name)?;
        Ok(store::info(&list, &path))
    }

    fn load(&self, name: &str) -> Result<(NetworkConfigList, PathBuf), NetworkError> {
        if !peapod_net::cni::valid_network_name(name) {
            return Err(NetworkError::NotFound(name.to_string()));
        }
        let path = defaults::config_path(&self.config_dir, name);
        if !path.exists() {
            return Err(NetworkError::NotFound(name.to_string()));
        }
        let list = NetworkConfigList::from_file(&path)
            .map_err(NetworkError::cni(format!("network {name:?}")))?;
        Ok((list, path))
    }

    /// Remove network `name`; `users` are the containers attached to it.
    pub fn remove(&self, name: &str, users: &[String]) -> Result<(), NetworkError> {
        if name == DEFAULT_NETWORK {
            return Err(NetworkError::RemoveDefault(name.to_string()));
        }
        let _lock = self.config_lock()?;
        let (list, path) = self.load(name)?;
        if !users.is_empty() {
            return Err(NetworkError::InUse {
                network: name.to_string(),
                users: users.to_vec(),
            });
        }
        // The rules first: a failure leaves the network as it was (and its
        // next attach ensures the rules again).
        if defaults::wants_host_rules(&list) {
            let marker = rules_marker::path(&self.markers, name);
            rules_marker::remove(&marker).map_err(NetworkError::io("remove", &marker))?;
            host_rules(&list)?
                .remove()
                .map_err(|source| NetworkError::HostRules {
                    network: name.to_string(),
                    source,
                })?;
        }
        std::fs::remove_file(&path).map_err(NetworkError::io("remove", &path))?;
        let bridge = store::bridge_of(&list);
        let others = store::load_all(&self.config_dir)?;
        let shared = others.iter().any(|(l, _)| store::bridge_of(l) == bridge);
        if !shared && valid_bridge(&bridge) && bridge_ports(&bridge) == Some(0) {
            let _ = Command::new("ip")
                .args(["link", "delete", &bridge])
                .output();
        }
        if let Some(dir) = store::lease_dir(&list) {
            remove_empty_lease_dir(&dir);
        }
        Ok(())
    }

    /// The network namespace file a container gets.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.netns.root().join(container_id)
    }

    /// Install network `list`'s host rules (from config file `config`)
    /// unless its marker says they are in place since boot.
    fn ensure_host_rules(
        &self,
        list: &NetworkConfigList,
        config: &Path,
    ) -> Result<(), NetworkError> {
        if !defaults::wants_host_rules(list) {
            return Ok(());
        }
        let rules = host_rules(list)?;
        let marker = rules_marker::path(&self.markers, &list.name);
        let want =
            rules_marker::content(&rules, config).map_err(NetworkError::io("stat", config))?;
        if rules_marker::matches(&marker, &want) {
            return Ok(());
        }
        rules.ensure().map_err(|source| NetworkError::HostRules {
            network: list.name.clone(),
            source,
        })?;
        rules_marker::write(&marker, &want).map_err(NetworkError::io("write", &marker))
    }

    fn check_plugins(&self, list: &NetworkConfigList) -> Result<(), NetworkError> {
        let mut wanted = Vec::new();
        for p in &list.plugins {
            for ty in [p.get("type"), p.get("ipam").and_then(|i| i.get("type"))]
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
            {
                wanted.push(ty.to_string());
            }
        }
        for plugin in wanted {
            let found = self.cni.plugin_dirs.iter().any(|d| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(d.join(&plugin))
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            });
            if !found {
                return Err(NetworkError::PluginMissing {
                    plugin,
                    dirs: self
                        .cni
                        .plugin_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":"),
                });
            }
        }
        Ok(())
    }

    fn cached(&self) -> Result<Vec<CachedAttachment>, NetworkError> {
        self.cni
            .cached()
            .map_err(NetworkError::cni("read the CNI result cache"))
    }

    /// Attach container `container_id` to `network` (None: the default one),
    /// publishing `ports`. Creates its network namespace if this is its first
    /// attachment. On failure nothing is left behind.
    pub fn attach(
        &self,
        container_id: &str,
        network: Option<&str>,
        ports: &[PortMapping],
    ) -> Result<Attachment, NetworkError> {
        let id = container_id;
        if self.netns.path(id).is_err() {
            return Err(NetworkError::InvalidId(id.to_string()));
        }
        let name = network.unwrap_or(DEFAULT_NETWORK);
        if name == DEFAULT_NETWORK {
            self.ensure_default()?;
        }
        let (list, config) = self.load(name)?;
        self.check_plugins(&list)?;
        let _lock = store::lock(&self.attach_lock)?;
        self.ensure_host_rules(&list, &config)?;
        let cached = self.cached()?;
        if cached
            .iter()
            .any(|c| c.container_id == id && c.network == name)
        {
            return Err(NetworkError::AlreadyAttached {
                id: id.to_string(),
                network: name.to_string(),
            });
        }
        let others: Vec<CachedAttachment> = cached
            .iter()
            .filter(|c| c.container_id != id)
            .cloned()
            .collect();
        let ports = ports::resolve(ports, &ports::published(&others))?;
        let earlier = cached
            .iter()
            .filter(|c| c.container_id == id && c.network != LOOPBACK_NETWORK)
            .count();
        let fresh = earlier == 0;
        let netns = if fresh {
            // No attachment: a namespace file is a leftover of a crash.
            self.netns.delete(id)?;
            self.netns.create(id)?
        } else {
            self.netns_path(id)
        };
        let rt = RuntimeConf {
            container_id: id.to_string(),
            netns: netns.clone(),
            ifname: format!("eth{earlier}"),
            capability_args: ports::capability_args(&ports),
            ..Default::default()
        };
        let result = match self.cni.add(&list, &rt) {
            Ok(r) => r,
            Err(e) => {
                let _ = self.cni.del(&list, &rt);
                if fresh {
                    let _ = self.netns.delete(id);
                }
                return Err(NetworkError::cni(format!(
                    "attach container {id} to network {name:?}"
                ))(e));
            }
        };
        Ok(attachment(name, netns, &rt.ifname, &result, ports))
    }

    /// Detach container `container_id` from every network and delete its
    /// network namespace. Idempotent; works from the cache alone, after a
    /// crash or when the namespace is already gone.
    pub fn detach(&self, container_id: &str) -> Result<(), NetworkError> {
        let id = container_id;
        if self.netns.path(id).is_err() {
            return Err(NetworkError::InvalidId(id.to_string()));
        }
        let _lock = store::lock(&self.attach_lock)?;
        self.detach_locked(id)
    }

    fn detach_locked(&self, id: &str) -> Result<(), NetworkError> {
        let mine: Vec<CachedAttachment> = self
            .cached()?
            .into_iter()
            .filter(|c| c.container_id == id)
            .collect();
        let path = self.netns_path(id);
        // A namespace file without its mount is no namespace: plugins would
        // fail on it, but treat a missing one as "already gone".
        let alive = is_mount_point(&path);
        if !alive {
            self.netns.delete(id)?;
        }
        let mut first_err = None;
        for c in &mine {
            let gone = !is_mount_point(Path::new(&c.netns));
            if let Err(e) = self.cni.del_cached(c) {
                first_err.get_or_insert(NetworkError::cni(format!(
                    "detach container {id} from network {:?}",
                    c.network
                ))(e));
            }
            if gone && c.network != LOOPBACK_NETWORK {
                reconcile::remove_masquerade(&c.network, id);
            }
        }
        let deleted = self.netns.delete(id);
        match first_err {
            Some(e) => Err(e),
            None => deleted.map_err(NetworkError::from),
        }
    }

    /// Detach every container of this engine (cached attachment or netns
    /// file) that `is_live` says is not running any more. Returns their ids.
    pub fn reconcile(&self, is_live: &dyn Fn(&str) -> bool) -> Result<Vec<String>, NetworkError> {
        let _lock = store::lock(&self.attach_lock)?;
        let mut ids: BTreeSet<String> =
            self.cached()?.into_iter().map(|c| c.container_id).collect();
        ids.extend(self.netns.list()?);
        let mut cleaned = Vec::new();
        let mut first_err = None;
        for id in ids {
            if is_live(&id) {
                continue;
            }
            match self.detach_locked(&id) {
                Ok(()) => cleaned.push(id),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(cleaned),
        }
    }
}

fn attachment(
    network: &str,
    netns: PathBuf,
    ifname: &str,
    result: &CniResult,
    ports: Vec<PortMapping>,
) -> Attachment {
    let iface = result
        .interfaces
        .iter()
        .position(|i| i.name == ifname && !i.sandbox.is_empty());
    let ip = result
        .ips
        .iter()
        .find(|ip| iface.is_none() || ip.interface == iface)
        .or_else(|| result.ips.first());
    let (addr, prefix_len) = match ip.map(|i| i.address.split_once('/')) {
        Some(Some((a, p))) => (a.parse().ok(), p.parse().ok()),
        _ => (None, None),
    };
    Attachment {
        network: network.to_string(),
        netns,
        ip: addr,
        prefix_len,
        gateway: ip
            .and_then(|i| i.gateway.as_deref())
            .and_then(|g| g.parse().ok()),
        mac: iface
            .map(|i| result.interfaces[i].mac.clone())
            .filter(|m| !m.is_empty()),
        ports,
    }
}

/// The host rules of bridge network `list`.
fn host_rules(list: &NetworkConfigList) -> Result<HostRules, NetworkError> {
    let subnet = store::subnet_of(list).ok_or_else(|| NetworkError::NoSubnet(list.name.clone()))?;
    HostRules::new(&list.name, &store::bridge_of(list), &subnet.to_string()).map_err(|source| {
        NetworkError::HostRules {
            network: list.name.clone(),
            source,
        }
    })
}

fn valid_bridge(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// How many ports bridge `name` has; None when it is no bridge (or gone).
fn bridge_ports(name: &str) -> Option<usize> {
    let dir = Path::new("/sys/class/net").join(name).join("brif");
    Some(std::fs::read_dir(dir).ok()?.count())
}

/// host-local's directory of a removed network, unless it still holds leases
/// (only its lock and last-reserved files are expected).
fn remove_empty_lease_dir(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "lock" && !name.starts_with("last_reserved_ip") {
            return;
        }
        files.push(e.path());
    }
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir(dir);
}
