//! CNI plugin invocation per the CNI spec (containernetworking/cni SPEC.md):
//! ADD runs a list's plugins in order, each one's result becoming the next
//! one's `prevResult`; CHECK and DEL pass the cached ADD result, DEL in
//! reverse order. The final ADD result and the list are cached under
//! `cache_dir/NETWORK-CONTAINERID-IFNAME` so DEL works after a crash or after
//! the network's config file is gone.

mod cache;
mod config;
mod exec;
mod result;

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use cache::CachedAttachment;
pub use config::{NetworkConfigList, valid_network_name};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};

/// Where Debian's containernetworking-plugins installs the plugins.
pub const DEFAULT_PLUGIN_DIR: &str = "/usr/lib/cni";
/// peapod's result cache (podman/libcni use /var/lib/cni/results).
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/peapod/cni/results";

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("bad CNI network config{}: {msg}", file.as_ref().map(|s| format!(" {s}")).unwrap_or_default())]
    BadConfig { file: Option<String>, msg: String },
    #[error("CNI plugin {plugin:?} not found in CNI_PATH={path}")]
    PluginNotFound { plugin: String, path: String },
    #[error("CNI plugin {plugin} {command} failed: {msg}{}{}", if details.is_empty() { String::new() } else { format!(" ({details})") }, code.map(|c| format!(" [code {c}]")).unwrap_or_default())]
    Plugin {
        plugin: String,
        command: &'static str,
        code: Option<u64>,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} {command}: bad result: {msg}")]
    BadResult {
        plugin: String,
        command: &'static str,
        msg: String,
    },
    #[error("no cached CNI result for {0}: was ADD run?")]
    NotCached(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// What identifies one attachment of a container to a network.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConf {
    pub container_id: String,
    /// The network namespace file (CNI_NETNS); may be gone at DEL.
    pub netns: PathBuf,
    /// Interface name inside the namespace (CNI_IFNAME), e.g. `eth0`.
    pub ifname: String,
    /// CNI_ARGS as key=value pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments (e.g. `portMappings`), passed in `runtimeConfig`
    /// to the plugins that declare the capability.
    pub capability_args: Map<String, Value>,
}

impl RuntimeConf {
    /// CNI_ARGS; `IgnoreUnknown=1` first, as plugins otherwise reject keys
    /// they do not know.
    fn cni_args(&self) -> String {
        if self.args.is_empty() {
            return String::new();
        }
        let ignore = (!self.args.iter().any(|(k, _)| k == "IgnoreUnknown"))
            .then(|| "IgnoreUnknown=1".to_string());
        ignore
            .into_iter()
            .chain(self.args.iter().map(|(k, v)| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Runs plugins from `plugin_dirs`, caching results in `cache_dir`.
#[derive(Debug, Clone)]
pub struct CniRuntime {
    pub plugin_dirs: Vec<PathBuf>,
    pub cache_dir: PathBuf,
}

impl Default for CniRuntime {
    fn default() -> Self {
        Self {
            plugin_dirs: vec![PathBuf::from(DEFAULT_PLUGIN_DIR)],
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Command {
    Add,
    Check,
    Del,
}

impl Command {
    fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Check => "CHECK",
            Command::Del => "DEL",
        }
    }
}

impl CniRuntime {
    pub fn new(plugin_dirs: Vec<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            plugin_dirs,
            cache_dir: cache_dir.into(),
        }
    }

    /// Attach: run every plugin's ADD in order, chaining results, then cache
    /// the final result. On failure the plugins already added are deleted
    /// (best effort) so nothing is left half-attached.
    pub fn add(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<CniResult, CniError> {
        let mut prev: Option<Value> = None;
        for i in 0..list.plugins.len() {
            match self.invoke(list, i, Command::Add, rt, prev.as_ref()) {
                Ok(Some(res)) => prev = Some(res),
                Ok(None) => {
                    return Err(CniError::BadResult {
                        plugin: list.plugin_type(i).to_string(),
                        command: "ADD",
                        msg: "empty output".into(),
                    });
                }
                Err(e) => {
                    for j in (0..=i).rev() {
                        let _ = self.invoke(list, j, Command::Del, rt, prev.as_ref());
                    }
                    return Err(e);
                }
            }
        }
        let raw = prev.unwrap_or(Value::Null);
        let parsed = parse_result(list.plugin_type(list.plugins.len() - 1), &raw)?;
        cache::store(&self.cache_dir, list, rt, &raw)?;
        Ok(parsed)
    }

    /// Verify an attachment with CHECK (skipped when the list disables it or
    /// its version predates CHECK).
    pub fn check(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), CniError> {
        if list.disable_check || version_before(&list.cni_version, (0, 4)) {
            return Ok(());
        }
        let key = cache::key(&list.name, &rt.container_id, &rt.ifname);
        let cached = cache::load(&self.cache_dir, &key)?.ok_or(CniError::NotCached(key))?;
        for i in 0..list.plugins.len() {
            self.invoke(list, i, Command::Check, rt, Some(&cached.result))?;
        }
        Ok(())
    }

    /// Detach: run every plugin's DEL in reverse order with the cached result
    /// as `prevResult`, then drop the cache entry. All plugins are tried even
    /// if one fails; the first error is returned and the cache is kept.
    pub fn del(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<(), CniError> {
        let key = cache::key(&list.name, &rt.container_id, &rt.ifname);
        let cached = cache::load(&self.cache_dir, &key)?;
        let prev = cached.as_ref().map(|c| &c.result);
        let mut first_err = None;
        for i in (0..list.plugins.len()).rev() {
            if let Err(e) = self.invoke(list, i, Command::Del, rt, prev) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => cache::remove(&self.cache_dir, &key),
        }
    }

    /// DEL from the cache alone (the network's config may be gone): for
    /// reconciling leftovers after a crash.
    pub fn del_cached(&self, cached: &CachedAttachment) -> Result<(), CniError> {
        let list = NetworkConfigList::from_value(cached.config.clone())?;
        let rt = cached.runtime_conf();
        self.del(&list, &rt)
    }

    /// Every cached attachment (the engine's view of what may still exist).
    pub fn cached(&self) -> Result<Vec<CachedAttachment>, CniError> {
        cache::list(&self.cache_dir)
    }

    fn invoke(
        &self,
        list: &NetworkConfigList,
        index: usize,
        command: Command,
        rt: &RuntimeConf,
        prev: Option<&Value>,
    ) -> Result<Option<Value>, CniError> {
        let plugin = list.plugin_type(index);
        // 0.1.0-0.3.x plugins know no prevResult on DEL.
        let prev = if command == Command::Del && version_before(&list.cni_version, (0, 4)) {
            None
        } else {
            prev
        };
        let stdin = list.plugin_stdin(index, &rt.capability_args, prev);
        let out = exec::run(self, plugin, command.as_str(), rt, &stdin)?;
        if command != Command::Add {
            return Ok(None);
        }
        if out.is_empty() {
            return Ok(None);
        }
        let v: Value = serde_json::from_slice(&out).map_err(|e| CniError::BadResult {
            plugin: plugin.to_string(),
            command: command.as_str(),
            msg: format!("not JSON ({e}): {}", String::from_utf8_lossy(&out).trim()),
        })?;
        parse_result(plugin, &v)?;
        Ok(Some(v))
    }

    fn search_path(&self) -> String {
        self.plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    fn find_plugin(&self, plugin: &str) -> Result<PathBuf, CniError> {
        self.plugin_dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| is_executable(p))
            .ok_or_else(|| CniError::PluginNotFound {
                plugin: plugin.to_string(),
                path: self.search_path(),
            })
    }
}

fn parse_result(plugin: &str, v: &Value) -> Result<CniResult, CniError> {
    serde_json::from_value(v.clone()).map_err(|e| CniError::BadResult {
        plugin: plugin.to_string(),
        command: "ADD",
        msg: e.to_string(),
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether version `v` ("MAJOR.MINOR.PATCH") is older than `(major, minor)`.
fn version_before(v: &str, (major, minor): (u64, u64)) -> bool {
    let mut it = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) < (major, minor)
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert!(super::version_before("0.3.1", (0, 4)));
        assert!(!super::version_before("0.4.0", (0, 4)));
        assert!(!super::version_before("1.0.0", (0, 4)));
    }
}
