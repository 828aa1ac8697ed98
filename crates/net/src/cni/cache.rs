//! The result cache: `DIR/NETWORK-CONTAINERID-IFNAME` holds the final ADD
//! result, the network's config list and the runtime arguments, written
//! atomically (temp + fsync + rename).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{CniError, NetworkConfigList, RuntimeConf};

/// One cached attachment.
#[derive(Debug, Clone)]
pub struct CachedAttachment {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: String,
    pub args: Vec<(String, String)>,
    pub capability_args: Map<String, Value>,
    /// The network config list at ADD time.
    pub config: Value,
    /// The final ADD result (raw JSON, as plugins want it for prevResult).
    pub result: Value,
}

impl CachedAttachment {
    pub fn runtime_conf(&self) -> RuntimeConf {
        RuntimeConf {
            container_id: self.container_id.clone(),
            netns: self.netns.clone().into(),
            ifname: self.ifname.clone(),
            args: self.args.clone(),
            capability_args: self.capability_args.clone(),
        }
    }
}

pub(super) fn key(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{network}-{container_id}-{ifname}")
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CniError {
    let path = path.to_path_buf();
    move |source| CniError::Io { what, path, source }
}

pub(super) fn store(
    dir: &Path,
    list: &NetworkConfigList,
    rt: &RuntimeConf,
    result: &Value,
) -> Result<(), CniError> {
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    let doc = json!({
        "kind": "peapodCniCacheV1",
        "networkName": list.name,
        "containerId": rt.container_id,
        "ifName": rt.ifname,
        "netns": rt.netns,
        "cniArgs": rt.args,
        "capabilityArgs": rt.capability_args,
        "config": list.raw,
        "result": result,
    });
    let k = key(&list.name, &rt.container_id, &rt.ifname);
    let path = dir.join(&k);
    let tmp = dir.join(format!(".{k}.tmp"));
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&doc).expect("JSON serializes"))?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("write CNI cache", &path)(e)
    })
}

pub(super) fn load(dir: &Path, key: &str) -> Result<Option<CachedAttachment>, CniError> {
    let path = dir.join(key);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read CNI cache", &path)(e)),
    };
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| CniError::BadConfig {
        file: Some(path.display().to_string()),
        msg: format!("corrupt cache entry: {e}"),
    })?;
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let args = serde_json::from_value(v["cniArgs"].clone()).unwrap_or_default();
    Ok(Some(CachedAttachment {
        network: s("networkName"),
        container_id: s("containerId"),
        ifname: s("ifName"),
        netns: s("netns"),
        args,
        capability_args: v["capabilityArgs"].as_object().cloned().unwrap_or_default(),
        config: v["config"].clone(),
        result: v["result"].clone(),
    }))
}

pub(super) fn remove(dir: &Path, key: &str) -> Result<(), CniError> {
    let path = dir.join(key);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove CNI cache", &path)(e)),
        _ => Ok(()),
    }
}

pub(super) fn list(dir: &Path) -> Result<Vec<CachedAttachment>, CniError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry.map_err(io_err("read", dir))?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        if let Some(c) = load(dir, name)? {
            out.push(c);
        }
    }
    out.sort_by(|a, b| (&a.network, &a.container_id).cmp(&(&b.network, &b.container_id)));
    Ok(out)
}
