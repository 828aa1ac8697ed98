//! One manifest document (a JSON value) to one typed [`Object`]: the
//! apiVersion/kind checks, the typed decode with the failing field's path,
//! and (when validating) the unknown-field check.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{KubeError, Location};
use crate::object::{Kind, Object};
use crate::strict;

/// Decodes one object. With `validate`, unknown fields are errors.
pub(crate) fn decode(mut value: Value, at: &Location, validate: bool) -> Result<Object, KubeError> {
    let Some(map) = value.as_object() else {
        return Err(KubeError::NotAnObject { at: at.clone() });
    };
    let api_version = match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => return Err(KubeError::MissingApiVersion { at: at.clone() }),
    };
    let kind_name = match map.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() => k.to_string(),
        _ => return Err(KubeError::MissingKind { at: at.clone() }),
    };
    let Some(kind) = Kind::from_name(&kind_name) else {
        return Err(KubeError::UnsupportedKind {
            at: at.clone(),
            kind: kind_name,
            api_version,
        });
    };
    if api_version != kind.api_version() {
        return Err(KubeError::WrongApiVersion {
            at: at.clone(),
            kind: kind_name,
            expected: kind.api_version().to_string(),
            api_version,
        });
    }
    stringify_quantities(&mut value);
    let typed = Typed {
        value: &value,
        at,
        kind,
        validate,
    };
    Ok(match kind {
        Kind::Pod => Object::Pod(typed.decode()?),
        Kind::Job => Object::Job(typed.decode()?),
        Kind::Deployment => Object::Deployment(typed.decode()?),
        Kind::ReplicaSet => Object::ReplicaSet(typed.decode()?),
        Kind::ConfigMap => Object::ConfigMap(typed.decode()?),
        Kind::Secret => Object::Secret(typed.decode()?),
    })
}

struct Typed<'a> {
    value: &'a Value,
    at: &'a Location,
    kind: Kind,
    validate: bool,
}

impl Typed<'_> {
    fn decode<T: Serialize + DeserializeOwned>(&self) -> Result<T, KubeError> {
        let typed: T =
            serde_path_to_error::deserialize(self.value).map_err(|e| KubeError::WrongType {
                at: self.at.clone(),
                kind: self.kind.name().to_string(),
                path: e.path().to_string(),
                message: e.into_inner().to_string(),
            })?;
        if self.validate {
            let unknown = strict::unknown_fields(self.value, &typed);
            if let Some(first) = unknown.first() {
                return Err(KubeError::UnknownField {
                    at: self.at.clone(),
                    field: first.field.clone(),
                    path: first.path.clone(),
                    more: unknown.len() - 1,
                });
            }
        }
        Ok(typed)
    }
}

/// Quantities are strings in the models, but manifests often write them as
/// YAML numbers (`cpu: 1`, `memory: 1073741824`), which Kubernetes accepts.
/// Turns numbers into strings under the keys that hold quantities.
fn stringify_quantities(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), &mut *child) {
                    ("limits" | "requests" | "overhead", Value::Object(quantities)) => {
                        for quantity in quantities.values_mut() {
                            stringify_number(quantity);
                        }
                    }
                    ("sizeLimit" | "divisor", quantity) => stringify_number(quantity),
                    (_, child) => stringify_quantities(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(stringify_quantities),
        _ => {}
    }
}

fn stringify_number(value: &mut Value) {
    if let Value::Number(n) = value {
        *value = Value::String(n.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at() -> Location {
        Location {
            source: "t.yaml".into(),
            document: 1,
            item: None,
        }
    }

    #[test]
    fn numeric_quantities_are_accepted() {
        let value = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"limits": {"cpu": 1, "memory": 1073741824}, "requests": {"cpu": 0.5}}}]},
        });
        let Ok(Object::Pod(pod)) = decode(value, &at(), true) else {
            panic!("pod expected");
        };
        let resources = pod.spec.and_then(|s| s.containers[0].resources.clone());
        let limits = resources.and_then(|r| r.limits).unwrap_or_default();
        assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("1"));
        assert_eq!(
            limits.get("memory").map(|q| q.0.as_str()),
            Some("1073741824")
        );
    }

    #[test]
    fn kind_and_api_version_errors() {
        let err = |v: Value| match decode(v, &at(), true) {
            Ok(_) => panic!("error expected"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err(json!({"kind": "Pod"})),
            "t.yaml document 1: missing apiVersion"
        );
        assert_eq!(
            err(json!({"apiVersion": "v1"})),
            "t.yaml document 1: missing kind"
        );
        assert_eq!(
            err(json!({"apiVersion": "v1", "kind": "Foo"})),
            "t.yaml document 1: unsupported kind \"Foo\" (apiVersion v1): peapod runs Pod, Job, Deployment, ReplicaSet, ConfigMap and Secret"
        );
        assert_eq!(
            err(json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment"})),
            "t.yaml document 1: Deployment must be apps/v1 (got apiVersion extensions/v1beta1)"
        );
        assert_eq!(
            err(json!(["a"])),
            "t.yaml document 1: is not an object (a manifest is a mapping with apiVersion and kind)"
        );
    }

    #[test]
    fn wrong_type_names_the_path() {
        let value = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": "eighty"}]}]},
        });
        match decode(value, &at(), true) {
            Err(KubeError::WrongType { path, .. }) => {
                assert_eq!(path, "spec.containers[0].ports[0].containerPort");
            }
            other => panic!("{other:?}"),
        }
    }
}
