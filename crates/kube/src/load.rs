//! Reading manifests: a file, a directory, or stdin; multi-document YAML,
//! JSON objects and `kind: List` documents.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::decode::decode;
use crate::error::{KubeError, Location};
use crate::object::Object;
use crate::validate::validate;

/// Loads every object of `path` with unknown fields refused: a file, a
/// directory (its `*.yaml`, `*.yml` and `*.json` files in name order, not
/// recursive), or `-` for stdin.
pub fn load_path(path: &Path) -> Result<Vec<Object>, KubeError> {
    load_path_with(path, true)
}

/// [`load_path`], with `validate == false` accepting unknown fields
/// (kubectl's `--validate=false`). Values are checked either way.
pub fn load_path_with(path: &Path, validate: bool) -> Result<Vec<Object>, KubeError> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| KubeError::Read {
                path: "-".to_string(),
                source,
            })?;
        return load_str(&text, "-", validate);
    }
    let read_error = |source| KubeError::Read {
        path: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in std::fs::read_dir(path).map_err(read_error)? {
            let file = entry.map_err(read_error)?.path();
            let manifest = file
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if manifest && file.is_file() {
                files.push(file);
            }
        }
        if files.is_empty() {
            return Err(KubeError::EmptyDirectory {
                path: path.display().to_string(),
            });
        }
        files.sort();
        let mut objects = Vec::new();
        for file in files {
            objects.extend(load_file(&file, validate)?);
        }
        return Ok(objects);
    }
    load_file(path, validate)
}

fn load_file(path: &Path, validate: bool) -> Result<Vec<Object>, KubeError> {
    let text = std::fs::read_to_string(path).map_err(|source| KubeError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text, &path.display().to_string(), validate)
}

/// Loads every object of `text`; `source` names it in errors. YAML
/// documents are separated by `---`; a text starting with `{` is JSON (one
/// or more objects). Empty documents are skipped; a `kind: List` document
/// contributes its `items`. With `validate`, unknown fields are errors;
/// values are always checked ([`crate::validate::validate`]).
pub fn load_str(text: &str, source: &str, validate: bool) -> Result<Vec<Object>, KubeError> {
    let documents = if text.trim_start().starts_with('{') {
        json_documents(text, source)?
    } else {
        yaml_documents(text, source)?
    };
    let mut objects = Vec::new();
    for (index, value) in documents.into_iter().enumerate() {
        let at = Location {
            source: source.to_string(),
            document: index + 1,
            item: None,
        };
        if value.is_null() {
            continue;
        }
        if is_list(&value) {
            let Some(Value::Array(items)) = value.get("items") else {
                return Err(KubeError::BadList { at });
            };
            for (item, value) in items.iter().enumerate() {
                let at = Location {
                    item: Some(item + 1),
                    ..at.clone()
                };
                objects.push(checked(value.clone(), &at, validate)?);
            }
        } else {
            objects.push(checked(value, &at, validate)?);
        }
    }
    Ok(objects)
}

fn checked(value: Value, at: &Location, validate_fields: bool) -> Result<Object, KubeError> {
    let object = decode(value, at, validate_fields)?;
    validate(&object).map_err(|errors| KubeError::Invalid {
        at: at.clone(),
        kind: object.kind().name().to_string(),
        name: object.name().to_string(),
        errors,
    })?;
    Ok(object)
}

/// `kind: List` (and the `*List` kinds kubectl prints, like `PodList`).
fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.ends_with("List"))
}

fn json_documents(text: &str, source: &str) -> Result<Vec<Value>, KubeError> {
    let mut documents = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let value = value.map_err(|e| KubeError::Syntax {
            at: Location {
                source: source.to_string(),
                document: documents.len() + 1,
                item: None,
            },
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
        documents.push(value);
    }
    Ok(documents)
}

/// serde_json's message without its trailing " at line L column C".
fn json_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

fn yaml_documents(text: &str, source: &str) -> Result<Vec<Value>, KubeError> {
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let at = Location {
            source: source.to_string(),
            document: documents.len() + 1,
            item: None,
        };
        let syntax = |e: serde_norway::Error| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            KubeError::Syntax {
                at: at.clone(),
                line,
                column,
                message: yaml_message(&e),
            }
        };
        let mut value = serde_norway::Value::deserialize(document).map_err(syntax)?;
        value.apply_merge().map_err(syntax)?;
        let value = yaml_to_json(value).map_err(|message| KubeError::Syntax {
            at: at.clone(),
            line: 0,
            column: 0,
            message,
        })?;
        documents.push(value);
    }
    Ok(documents)
}

/// serde_norway's message without its " at line L column C" part.
fn yaml_message(error: &serde_norway::Error) -> String {
    let text = error.to_string();
    match text.find(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

/// A YAML value as JSON: tags are dropped, scalar keys become strings.
fn yaml_to_json(value: serde_norway::Value) -> Result<Value, String> {
    use serde_norway::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("number {n} is not finite"))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in map {
                let key = match key {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_string(),
                    _ => return Err("a mapping key must be a scalar".to_string()),
                };
                out.insert(key, yaml_to_json(value)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: busybox\n";

    fn names(objects: &[Object]) -> Vec<String> {
        objects
            .iter()
            .map(|o| format!("{}/{}", o.kind().name(), o.name()))
            .collect()
    }

    #[test]
    fn multi_document_yaml_skips_empty_documents() {
        let text = format!(
            "---\n# only a comment\n---\n{POD}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n---\n"
        );
        let objects = load_str(&text, "multi.yaml", true).unwrap_or_default();
        assert_eq!(names(&objects), ["Pod/p", "ConfigMap/cm"]);
    }

    #[test]
    fn json_object_and_list() {
        let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#;
        let objects = load_str(pod, "pod.json", true).unwrap_or_default();
        assert_eq!(names(&objects), ["Pod/j"]);
        let list = format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[{pod},{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"s"}},"stringData":{{"k":"v"}}}}]}}"#
        );
        let objects = load_str(&list, "list.json", true).unwrap_or_default();
        assert_eq!(names(&objects), ["Pod/j", "Secret/s"]);
    }

    #[test]
    fn yaml_list() {
        let text = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            POD.replace('\n', "\n  ")
        );
        let objects = load_str(&text, "list.yaml", true).unwrap_or_default();
        assert_eq!(names(&objects), ["Pod/p"]);
        let err = load_str("apiVersion: v1\nkind: List\n", "l.yaml", true).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("l.yaml document 1: a List needs an items array".to_string())
        );
    }

    #[test]
    fn list_item_errors_name_the_item() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Foo\n";
        let err = load_str(text, "l.yaml", true).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("l.yaml document 1 item 1: unsupported kind")));
    }

    #[test]
    fn yaml_syntax_error_has_line_and_column() {
        let text = format!("{POD}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: [oops\n");
        match load_str(&text, "bad.yaml", true) {
            Err(KubeError::Syntax {
                at, line, column, ..
            }) => {
                assert_eq!(at.document, 2);
                assert!(line >= 12, "line {line} is in the second document");
                assert!(column > 0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_syntax_error_has_line_and_column() {
        match load_str("{\n  \"kind\": \"Pod\",\n  oops\n}", "bad.json", true) {
            Err(e @ KubeError::Syntax { .. }) => {
                let text = e.to_string();
                assert!(
                    text.starts_with("bad.json document 1: syntax error at line 3 column 3: "),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn directory_and_file() {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let write = |name: &str, text: &str| {
            if let Err(e) = std::fs::write(dir.path().join(name), text) {
                panic!("{e}");
            }
        };
        write("b.yaml", &POD.replace("name: p", "name: b"));
        write("a.yml", &POD.replace("name: p", "name: a"));
        write(
            "c.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
        );
        write("notes.txt", "not a manifest");
        let objects = load_path(dir.path()).unwrap_or_default();
        assert_eq!(names(&objects), ["Pod/a", "Pod/b", "ConfigMap/c"]);
        let objects = load_path(&dir.path().join("b.yaml")).unwrap_or_default();
        assert_eq!(names(&objects), ["Pod/b"]);
        let missing = load_path(&dir.path().join("nope.yaml")).err();
        assert!(matches!(missing, Some(KubeError::Read { .. })));
    }
}
