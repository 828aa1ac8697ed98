//! Unknown-field detection ("strict" decoding, kubectl's `--validate`).
//!
//! The typed models ignore keys they do not know. To find those keys the
//! input is decoded, encoded back, and walked against the result: a key of
//! the input that the round trip lost is a candidate. A candidate is not
//! necessarily unknown: the models drop `null` values, and a lost key may
//! be a known field whose value encoded to nothing. So each candidate is
//! probed: its value is replaced by a string and the object decoded again.
//! A known field either refuses the string (a type error) or keeps it (it
//! is back after the round trip); only an unknown field silently drops it.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A probe value no model field turns into nothing.
const PROBE: &str = "peapod-probe";

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// An unknown field: its key and its full path (`spec.containers[0].imagee`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownField {
    pub field: String,
    pub path: String,
}

/// Every key of `input` that the model `T` does not know, in walk order.
/// `typed` is `input` decoded as `T`.
pub(crate) fn unknown_fields<T>(input: &Value, typed: &T) -> Vec<UnknownField>
where
    T: Serialize + DeserializeOwned,
{
    let Ok(output) = serde_json::to_value(typed) else {
        return Vec::new();
    };
    let mut candidates = Vec::new();
    collect_lost(input, &output, &mut Vec::new(), &mut candidates);
    candidates
        .into_iter()
        .filter(|path| !is_known::<T>(input, path))
        .map(|path| UnknownField {
            field: match path.last() {
                Some(Step::Key(key)) => key.clone(),
                _ => String::new(),
            },
            path: render(&path),
        })
        .collect()
}

/// Pushes the path of every key in `input` missing from `output`.
fn collect_lost(input: &Value, output: &Value, path: &mut Vec<Step>, lost: &mut Vec<Vec<Step>>) {
    match (input, output) {
        (Value::Object(input), Value::Object(output)) => {
            for (key, value) in input {
                path.push(Step::Key(key.clone()));
                match output.get(key) {
                    Some(out) => collect_lost(value, out, path, lost),
                    None => lost.push(path.clone()),
                }
                path.pop();
            }
        }
        (Value::Array(input), Value::Array(output)) => {
            for (index, (value, out)) in input.iter().zip(output).enumerate() {
                path.push(Step::Index(index));
                collect_lost(value, out, path, lost);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Whether the field at `path` (lost in the round trip) is one `T` knows.
fn is_known<T>(input: &Value, path: &[Step]) -> bool
where
    T: Serialize + DeserializeOwned,
{
    let mut probe = input.clone();
    match lookup_mut(&mut probe, path) {
        Some(slot) => *slot = Value::String(PROBE.to_string()),
        None => return true,
    }
    match serde_json::from_value::<T>(probe) {
        Err(_) => true,
        Ok(typed) => match serde_json::to_value(&typed) {
            Ok(output) => lookup(&output, path).is_some(),
            Err(_) => true,
        },
    }
}

fn lookup<'v>(mut value: &'v Value, path: &[Step]) -> Option<&'v Value> {
    for step in path {
        value = match step {
            Step::Key(key) => value.as_object()?.get(key)?,
            Step::Index(index) => value.as_array()?.get(*index)?,
        };
    }
    Some(value)
}

fn lookup_mut<'v>(mut value: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    for step in path {
        value = match step {
            Step::Key(key) => value.as_object_mut()?.get_mut(key)?,
            Step::Index(index) => value.as_array_mut()?.get_mut(*index)?,
        };
    }
    Some(value)
}

/// `spec.containers[0].image` style.
fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn unknown(input: Value) -> Vec<String> {
        let pod: Pod = match serde_json::from_value(input.clone()) {
            Ok(pod) => pod,
            Err(e) => panic!("{e}"),
        };
        unknown_fields(&input, &pod)
            .into_iter()
            .map(|u| u.path)
            .collect()
    }

    fn pod(container: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "creationTimestamp": null, "labels": {}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}, container]},
        })
    }

    #[test]
    fn known_fields_that_round_trip_differently() {
        let input = pod(json!({
            "name": "d",
            "image": null,
            "command": [],
            "env": [{"name": "A", "value": null}],
            "ports": [{"containerPort": 80, "hostIP": null}],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {}},
            "livenessProbe": {"httpGet": {"port": "http", "path": null}},
            "readinessProbe": {"tcpSocket": {"port": 80}},
            "securityContext": {"capabilities": {"drop": []}},
        }));
        assert_eq!(unknown(input), Vec::<String>::new());
    }

    #[test]
    fn unknown_at_several_depths() {
        let mut input = pod(json!({"name": "d", "imagee": "busybox"}));
        input["spec"]["restartPolicyy"] = json!("Never");
        input["metadata"]["lables"] = json!({"a": "b"});
        input["spec"]["containers"][0]["livenessProbe"] =
            json!({"exec": {"command": ["true"], "cmd": null}});
        assert_eq!(
            unknown(input),
            vec![
                "metadata.lables",
                "spec.containers[0].livenessProbe.exec.cmd",
                "spec.containers[1].imagee",
                "spec.restartPolicyy",
            ]
        );
    }

    #[test]
    fn unknown_null_and_empty_values() {
        let input = pod(json!({"name": "d", "imagee": null, "portz": [], "envv": {}}));
        assert_eq!(
            unknown(input),
            vec![
                "spec.containers[1].envv",
                "spec.containers[1].imagee",
                "spec.containers[1].portz",
            ]
        );
    }

    #[test]
    fn render_paths() {
        let path = [
            Step::Key("spec".into()),
            Step::Key("containers".into()),
            Step::Index(3),
            Step::Key("imagee".into()),
        ];
        assert_eq!(render(&path), "spec.containers[3].imagee");
        assert_eq!(render(&[]), "");
    }
}
