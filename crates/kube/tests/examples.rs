//! The project's example manifests (examples/*.yaml) load and validate
//! clean, and give the QoS classes and names peapod relies on.

use std::path::PathBuf;

use peapod_kube::qos::{QosClass, qos_class};
use peapod_kube::{Kind, Object, load_path, load_str};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn load(name: &str) -> Object {
    match load_path(&examples().join(name)) {
        Ok(mut objects) if objects.len() == 1 => objects.remove(0),
        Ok(objects) => panic!("{name}: {} objects", objects.len()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn every_example_loads_and_validates() {
    let objects = match load_path(&examples()) {
        Ok(objects) => objects,
        Err(e) => panic!("{e}"),
    };
    let found: Vec<String> = objects
        .iter()
        .map(|o| format!("{}/{}/{}", o.kind().name(), o.namespace(), o.name()))
        .collect();
    assert_eq!(
        found,
        [
            "Pod/default/crashloop",
            "Pod/default/limited",
            "Pod/default/nonroot",
            "Job/default/shared-pid",
            "Pod/default/web-with-sidecar",
            "Job/default/two-containers",
            "Deployment/default/web",
        ]
    );
}

#[test]
fn every_example_is_strict_clean_one_by_one() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 7);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let strict = load_str(&text, &file.display().to_string(), true);
        assert!(strict.is_ok(), "{:?}", strict.err().map(|e| e.to_string()));
    }
}

#[test]
fn limits_example_is_burstable() {
    let Object::Pod(pod) = load("limits-pod.yaml") else {
        panic!("a Pod");
    };
    let spec = pod.spec.unwrap_or_default();
    assert_eq!(qos_class(&spec), QosClass::Burstable);
}

#[test]
fn examples_without_resources_are_best_effort() {
    for name in ["crashloop-pod.yaml", "sidecar-pod.yaml", "nonroot-pod.yaml"] {
        let Object::Pod(pod) = load(name) else {
            panic!("{name}: a Pod");
        };
        assert_eq!(
            qos_class(&pod.spec.unwrap_or_default()),
            QosClass::BestEffort,
            "{name}"
        );
    }
    let Object::Deployment(deployment) = load("web-deployment.yaml") else {
        panic!("a Deployment");
    };
    assert_eq!(deployment.spec.replicas, Some(3));
    let spec = deployment.spec.template.spec.unwrap_or_default();
    assert_eq!(qos_class(&spec), QosClass::BestEffort);
}

#[test]
fn a_guaranteed_pod() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: exact\nspec:\n  initContainers:\n  - name: setup\n    image: busybox\n    resources:\n      limits: {cpu: 100m, memory: 16Mi}\n  containers:\n  - name: main\n    image: busybox\n    resources:\n      limits: {cpu: '1', memory: 64Mi}\n      requests: {cpu: 1000m, memory: 64Mi}\n";
    let objects = load_str(text, "guaranteed.yaml", true).unwrap_or_default();
    let Some(Object::Pod(pod)) = objects.first() else {
        panic!("a Pod");
    };
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!(qos_class(&spec), QosClass::Guaranteed);
}

#[test]
fn jobs_carry_their_restart_policy() {
    for name in ["shared-pid-job.yaml", "two-containers-job.yaml"] {
        let object = load(name);
        assert_eq!(object.kind(), Kind::Job);
        let Object::Job(job) = object else {
            panic!("a Job");
        };
        let template = job
            .spec
            .unwrap_or_default()
            .template
            .spec
            .unwrap_or_default();
        assert_eq!(template.restart_policy.as_deref(), Some("OnFailure"));
        assert_eq!(template.containers.len(), 2);
    }
}
