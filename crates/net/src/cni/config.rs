//! Network configuration lists (`.conflist`), per the CNI spec section 1.

use std::fs;
use std::path::Path;

use serde_json::{Map, Value};

use super::CniError;

/// A parsed network configuration list: the raw plugin objects are kept as
/// JSON so plugin-specific keys pass through untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub cni_version: String,
    pub name: String,
    pub disable_check: bool,
    pub plugins: Vec<Map<String, Value>>,
    /// The whole list as parsed (stored in the result cache for DEL).
    pub raw: Value,
}

impl NetworkConfigList {
    pub fn from_file(path: &Path) -> Result<Self, CniError> {
        let bytes = fs::read(path).map_err(|source| CniError::Io {
            what: "read network config",
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            CniError::BadConfig { file: None, msg } => CniError::BadConfig {
                file: Some(path.display().to_string()),
                msg,
            },
            other => other,
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CniError> {
        let raw: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        Self::from_value(raw)
    }

    pub fn from_value(raw: Value) -> Result<Self, CniError> {
        let obj = raw
            .as_object()
            .ok_or_else(|| bad("the top level must be a JSON object".into()))?;
        let cni_version = req_str(obj, "cniVersion", "the list")?;
        let name = req_str(obj, "name", "the list")?;
        if !valid_network_name(&name) {
            return Err(bad(format!(
                "network name {name:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
            )));
        }
        let disable_check = match obj.get("disableCheck") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            Some(other) => return Err(bad(format!("disableCheck must be a boolean, not {other}"))),
        };
        let list = match obj.get("plugins") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            Some(Value::Array(_)) => return Err(bad("\"plugins\" is empty".into())),
            Some(_) => return Err(bad("\"plugins\" must be an array".into())),
            None => return Err(bad("missing \"plugins\" (is this a single .conf?)".into())),
        };
        let mut plugins = Vec::with_capacity(list.len());
        for (i, p) in list.iter().enumerate() {
            let p = p
                .as_object()
                .ok_or_else(|| bad(format!("plugins[{i}] must be an object")))?;
            let ty = req_str(p, "type", &format!("plugins[{i}]"))?;
            if ty.contains('/') || ty.starts_with('.') {
                return Err(bad(format!("plugins[{i}]: invalid type {ty:?}")));
            }
            plugins.push(p.clone());
        }
        Ok(Self {
            cni_version,
            name,
            disable_check,
            plugins,
            raw,
        })
    }

    /// The stdin config of plugin `index`: its object with the list's `name`
    /// and `cniVersion` injected, `runtimeConfig` for the capabilities it
    /// declares, and `prevResult` when given.
    pub fn plugin_stdin(
        &self,
        index: usize,
        capability_args: &Map<String, Value>,
        prev_result: Option<&Value>,
    ) -> Value {
        let mut conf = self.plugins[index].clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        let mut runtime = Map::new();
        if let Some(Value::Object(caps)) = conf.get("capabilities") {
            for (cap, enabled) in caps {
                if enabled == &Value::Bool(true)
                    && let Some(v) = capability_args.get(cap)
                {
                    runtime.insert(cap.clone(), v.clone());
                }
            }
        }
        conf.remove("runtimeConfig");
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        conf.remove("prevResult");
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        Value::Object(conf)
    }

    pub fn plugin_type(&self, index: usize) -> &str {
        self.plugins[index]["type"].as_str().unwrap_or_default()
    }
}

pub fn valid_network_name(name: &str) -> bool {
    let mut b = name.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && b.all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

fn bad(msg: String) -> CniError {
    CniError::BadConfig { file: None, msg }
}

fn req_str(obj: &Map<String, Value>, key: &str, what: &str) -> Result<String, CniError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(bad(format!("{what}: \"{key}\" is empty"))),
        Some(other) => Err(bad(format!(
            "{what}: \"{key}\" must be a string, not {other}"
        ))),
        None => Err(bad(format!("{what}: missing \"{key}\""))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn injects_name_version_caps_prev() {
        let l = NetworkConfigList::from_value(json!({
            "cniVersion": "1.0.0", "name": "n1",
            "plugins": [{"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": true}}]
        }))
        .unwrap();
        let mut caps = Map::new();
        caps.insert("portMappings".into(), json!([{"hostPort": 8080}]));
        caps.insert("bandwidth".into(), json!({}));
        let s0 = l.plugin_stdin(0, &caps, None);
        assert_eq!(
            s0,
            json!({"type": "bridge", "name": "n1", "cniVersion": "1.0.0"})
        );
        let prev = json!({"ips": []});
        let s1 = l.plugin_stdin(1, &caps, Some(&prev));
        assert_eq!(
            s1["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080}]})
        );
        assert_eq!(s1["prevResult"], prev);
    }

    #[test]
    fn rejects_bad_lists() {
        for (doc, want) in [
            (json!([]), "JSON object"),
            (
                json!({"name": "x", "plugins": [{"type": "a"}]}),
                "cniVersion",
            ),
            (json!({"cniVersion": "1.0.0", "name": "x"}), "plugins"),
            (
                json!({"cniVersion": "1.0.0", "name": "x", "plugins": []}),
                "empty",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "x", "plugins": [{}]}),
                "plugins[0]",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "a b", "plugins": [{"type": "a"}]}),
                "network name",
            ),
        ] {
            let e = NetworkConfigList::from_value(doc).unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }
}
