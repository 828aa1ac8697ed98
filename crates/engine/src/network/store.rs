//! Network config lists on disk (one `NAME.conflist` per network in the CNI
//! config directory), what `network ls/inspect` shows of them, and the file
//! locks that serialize changes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{Flock, FlockArg};
use peapod_net::cni::NetworkConfigList;
use peapod_net::defaults::{META_KEY, config_path};
use serde_json::Value;

use super::subnet::Ipv4Net;
use super::{NetworkError, NetworkInfo};

/// An exclusive lock held until dropped.
pub(super) struct Lock {
    _file: Flock<File>,
}

pub(super) fn lock(path: &Path) -> Result<Lock, NetworkError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(NetworkError::io("create", dir))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(NetworkError::io("open lock", path))?;
    let file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| {
        NetworkError::io("lock", path)(io::Error::from_raw_os_error(errno as i32))
    })?;
    Ok(Lock { _file: file })
}

/// The config lists present, by file name order.
pub(super) fn load_all(dir: &Path) -> Result<Vec<(NetworkConfigList, PathBuf)>, NetworkError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(NetworkError::io("read", dir)(e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(NetworkError::io("read", dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".conflist") && !name.starts_with('.') {
            paths.push(path);
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        // A broken or foreign file is skipped, not fatal for `ls`.
        if let Ok(list) = NetworkConfigList::from_file(&path) {
            out.push((list, path));
        }
    }
    Ok(out)
}

/// The first plugin's object (the one that makes the interface).
fn main_plugin(list: &NetworkConfigList) -> &serde_json::Map<String, Value> {
    &list.plugins[0]
}

/// The first IPAM range of the main plugin: (subnet, gateway).
fn first_range(list: &NetworkConfigList) -> (Option<String>, Option<String>) {
    let ipam = &main_plugin(list).get("ipam");
    let range = ipam
        .and_then(|i| i.get("ranges"))
        .and_then(|r| r.get(0))
        .and_then(|r| r.get(0));
    let subnet = range
        .and_then(|r| r.get("subnet"))
        .or_else(|| ipam.and_then(|i| i.get("subnet")))
        .and_then(Value::as_str)
        .map(str::to_string);
    let gateway = range
        .and_then(|r| r.get("gateway"))
        .or_else(|| ipam.and_then(|i| i.get("gateway")))
        .and_then(Value::as_str)
        .map(str::to_string);
    (subnet, gateway)
}

pub(super) fn subnet_of(list: &NetworkConfigList) -> Option<Ipv4Net> {
    first_range(list).0?.parse().ok()
}

/// The host bridge device (the bridge plugin's default is `cni0`).
pub(super) fn bridge_of(list: &NetworkConfigList) -> String {
    main_plugin(list)
        .get("bridge")
        .and_then(Value::as_str)
        .unwrap_or("cni0")
        .to_string()
}

/// host-local's lease directory for this network.
pub(super) fn lease_dir(list: &NetworkConfigList) -> Option<PathBuf> {
    let ipam = main_plugin(list).get("ipam")?;
    if ipam.get("type").and_then(Value::as_str) != Some("host-local") {
        return None;
    }
    let base = ipam
        .get("dataDir")
        .and_then(Value::as_str)
        .unwrap_or("/var/lib/cni/networks");
    Some(Path::new(base).join(&list.name))
}

pub(super) fn info(list: &NetworkConfigList, path: &Path) -> NetworkInfo {
    let (subnet, gateway) = first_range(list);
    let gateway = gateway.or_else(|| {
        subnet
            .as_deref()
            .and_then(|s| s.parse::<Ipv4Net>().ok())
            .map(|n| n.first_host().to_string())
    });
    let created = list
        .raw
        .get(META_KEY)
        .and_then(|m| m.get("created"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            let t = fs::metadata(path)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            crate::time::format_rfc3339_nano(t)
        });
    NetworkInfo {
        name: list.name.clone(),
        driver: main_plugin(list)
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        subnet: subnet.unwrap_or_default(),
        gateway: gateway.unwrap_or_default(),
        bridge: bridge_of(list),
        created,
    }
}

/// Write `conflist` as `DIR/NAME.conflist` atomically; its path.
pub(super) fn write(dir: &Path, name: &str, conflist: &Value) -> Result<PathBuf, NetworkError> {
    let path = config_path(dir, name);
    fs::create_dir_all(dir).map_err(NetworkError::io("create", dir))?;
    let tmp = dir.join(format!(".{name}.conflist.tmp"));
    let bytes = serde_json::to_vec_pretty(conflist).unwrap_or_default();
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        NetworkError::io("write network config", &path)(e)
    })?;
    Ok(path)
}

/// Add the creation time to a config list's peapod metadata (kept with the
/// rest of it).
pub(super) fn stamp(conflist: &mut Value, created: SystemTime) {
    let Some(obj) = conflist.as_object_mut() else {
        return;
    };
    let meta = obj
        .entry(META_KEY)
        .or_insert_with(|| Value::Object(Default::default()));
    if !meta.is_object() {
        *meta = Value::Object(Default::default());
    }
    meta["created"] = Value::String(crate::time::format_rfc3339_nano(created));
}
