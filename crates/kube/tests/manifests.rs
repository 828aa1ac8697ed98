//! Loading manifests the way a user hands them over: typos, bad values,
//! unknown kinds, JSON, several documents.

use peapod_kube::{KubeError, Object, load_str};

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: typo
  labels:
    app: web
spec:
  volumes:
  - name: data
    emptyDir: {}
  containers:
  - name: web
    image: busybox
    volumeMounts:
    - name: data
      mountPath: /data
    readinessProbe:
      httpGet:
        path: /
        port: 8080
";

fn error(text: &str) -> KubeError {
    match load_str(text, "typo.yaml", true) {
        Ok(_) => panic!("an error expected"),
        Err(e) => e,
    }
}

fn unknown_path(text: &str) -> String {
    match error(text) {
        KubeError::UnknownField { path, .. } => path,
        other => panic!("not an unknown field: {other}"),
    }
}

#[test]
fn the_base_manifest_is_fine() {
    assert!(load_str(POD, "typo.yaml", true).is_ok());
}

#[test]
fn misspelled_field_in_a_container() {
    let text = POD.replace(
        "    image: busybox",
        "    imagee: busybox\n    image: busybox",
    );
    assert_eq!(unknown_path(&text), "spec.containers[0].imagee");
    assert_eq!(
        error(&text).to_string(),
        "typo.yaml document 1: unknown field \"imagee\" at spec.containers[0].imagee"
    );
}

#[test]
fn misspelled_field_at_three_depths() {
    // Top of the spec.
    let text = POD.replace("  volumes:", "  restartPolicyy: Never\n  volumes:");
    assert_eq!(unknown_path(&text), "spec.restartPolicyy");
    // Inside a list item inside a container.
    let text = POD.replace(
        "      mountPath: /data",
        "      mountPth: /data\n      mountPath: /data",
    );
    assert_eq!(
        unknown_path(&text),
        "spec.containers[0].volumeMounts[0].mountPth"
    );
    // Four levels into a container: a probe's action.
    let text = POD.replace("        path: /", "        pathh: /");
    assert_eq!(
        unknown_path(&text),
        "spec.containers[0].readinessProbe.httpGet.pathh"
    );
    // In metadata, and one with a null value.
    let text = POD.replace("  labels:", "  lables: null\n  labels:");
    assert_eq!(unknown_path(&text), "metadata.lables");
}

#[test]
fn several_unknown_fields_are_counted() {
    let text = POD
        .replace(
            "    image: busybox",
            "    imagee: busybox\n    image: busybox",
        )
        .replace("  volumes:", "  hostNetwerk: true\n  volumes:");
    assert_eq!(
        error(&text).to_string(),
        "typo.yaml document 1: unknown field \"imagee\" at spec.containers[0].imagee (and 1 more unknown field)"
    );
}

#[test]
fn validate_false_accepts_unknown_fields() {
    let text = POD.replace(
        "    image: busybox",
        "    imagee: busybox\n    image: busybox",
    );
    let objects = load_str(&text, "typo.yaml", false).unwrap_or_default();
    assert_eq!(objects.len(), 1);
    // Values are still checked.
    let text = POD.replace("    image: busybox", "    imagee: busybox");
    match load_str(&text, "typo.yaml", false) {
        Err(KubeError::Invalid { errors, .. }) => {
            assert_eq!(errors.paths(), ["spec.containers[0].image"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn known_fields_with_null_or_empty_values_are_not_unknown() {
    let text = POD
        .replace("  labels:", "  creationTimestamp: null\n  annotations: {}\n  labels:")
        .replace("    image: busybox", "    image: busybox\n    args: []\n    env: null\n    resources: {}\n    securityContext: {}");
    assert!(load_str(&text, "typo.yaml", true).is_ok());
}

#[test]
fn bad_quantity_names_the_field() {
    let text = POD.replace(
        "    image: busybox",
        "    image: busybox\n    resources:\n      limits:\n        memory: 5Gx",
    );
    match error(&text) {
        KubeError::Invalid {
            errors, kind, name, ..
        } => {
            assert_eq!(
                errors.paths(),
                ["spec.containers[0].resources.limits.memory"]
            );
            assert_eq!((kind.as_str(), name.as_str()), ("Pod", "typo"));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn duplicate_container_names() {
    let text = format!("{POD}  - name: web\n    image: nginx\n");
    match error(&text) {
        KubeError::Invalid { errors, .. } => {
            assert_eq!(errors.paths(), ["spec.containers[1].name"]);
            assert_eq!(errors.0[0].message, "duplicate container name \"web\"");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn unknown_kind_and_wrong_api_version() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n";
    assert_eq!(
        error(text).to_string(),
        "typo.yaml document 1: unsupported kind \"Service\" (apiVersion v1): peapod runs Pod, Job, Deployment, ReplicaSet, ConfigMap and Secret"
    );
    let text =
        format!("{POD}---\napiVersion: apps/v1beta1\nkind: Deployment\nmetadata:\n  name: d\n");
    assert_eq!(
        error(&text).to_string(),
        "typo.yaml document 2: Deployment must be apps/v1 (got apiVersion apps/v1beta1)"
    );
}

#[test]
fn json_input() {
    let text = r#"{
  "apiVersion": "batch/v1",
  "kind": "Job",
  "metadata": {"name": "once", "namespace": "batch"},
  "spec": {"template": {"spec": {
    "restartPolicy": "Never",
    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]
  }}}
}"#;
    let objects = load_str(text, "job.json", true).unwrap_or_default();
    let [Object::Job(job)] = objects.as_slice() else {
        panic!("one Job expected: {objects:?}");
    };
    assert_eq!(job.metadata.namespace.as_deref(), Some("batch"));
    assert_eq!(objects[0].namespace(), "batch");
    let typo = text.replace("\"command\"", "\"comand\"");
    match load_str(&typo, "job.json", true) {
        Err(KubeError::UnknownField { path, .. }) => {
            assert_eq!(path, "spec.template.spec.containers[0].comand");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn multi_document_yaml() {
    let config =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n";
    let secret =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ndata:\n  password: aHVudGVyMg==\n";
    let text = format!("---\n{config}---\n\n---\n{POD}---\n{secret}");
    let objects = load_str(&text, "all.yaml", true).unwrap_or_default();
    let kinds: Vec<&str> = objects.iter().map(|o| o.kind().name()).collect();
    assert_eq!(kinds, ["ConfigMap", "Pod", "Secret"]);
    let Some(Object::Secret(secret)) = objects.last() else {
        panic!("a Secret");
    };
    let password = secret.data.as_ref().and_then(|d| d.get("password"));
    assert_eq!(password.map(|b| b.0.as_slice()), Some(&b"hunter2"[..]));
    // An error in a later document names that document.
    let text = format!(
        "{config}---\n{}",
        POD.replace("image: busybox", "imagee: busybox")
    );
    assert!(
        error(&text)
            .to_string()
            .starts_with("typo.yaml document 2: unknown field")
    );
}

#[test]
fn yaml_syntax_error() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n   bad: indent\n";
    let message = error(text).to_string();
    assert!(
        message.starts_with("typo.yaml document 1: syntax error at line 5 column"),
        "{message}"
    );
}

#[test]
fn wrong_types_name_the_field() {
    let text = POD.replace("port: 8080", "port: [8080]");
    let message = error(&text).to_string();
    assert!(
        message
            .starts_with("typo.yaml document 1: spec.containers[0].readinessProbe.httpGet.port: "),
        "{message}"
    );
}
