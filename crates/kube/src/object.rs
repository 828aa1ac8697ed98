//! The Kubernetes objects peapod runs, as one enum of typed models.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The namespace of an object that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// One loaded manifest object.
// Pod is much larger than ConfigMap; manifests are few and matching on
// unboxed variants is simpler for callers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Pod(Pod),
    Job(Job),
    Deployment(Deployment),
    ReplicaSet(ReplicaSet),
    ConfigMap(ConfigMap),
    Secret(Secret),
}

/// A supported kind: its name and the one apiVersion peapod accepts for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    Job,
    Deployment,
    ReplicaSet,
    ConfigMap,
    Secret,
}

impl Kind {
    /// The kind named `kind` (case-sensitive, as Kubernetes), if supported.
    pub fn from_name(kind: &str) -> Option<Kind> {
        Some(match kind {
            "Pod" => Kind::Pod,
            "Job" => Kind::Job,
            "Deployment" => Kind::Deployment,
            "ReplicaSet" => Kind::ReplicaSet,
            "ConfigMap" => Kind::ConfigMap,
            "Secret" => Kind::Secret,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Job => "Job",
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Pod | Kind::ConfigMap | Kind::Secret => "v1",
            Kind::Job => "batch/v1",
            Kind::Deployment | Kind::ReplicaSet => "apps/v1",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Pod(_) => Kind::Pod,
            Object::Job(_) => Kind::Job,
            Object::Deployment(_) => Kind::Deployment,
            Object::ReplicaSet(_) => Kind::ReplicaSet,
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Secret(_) => Kind::Secret,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Pod(o) => &o.metadata,
            Object::Job(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::ReplicaSet(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
        }
    }

    /// `metadata.name`; empty only for objects that were not validated.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// `metadata.namespace`, or "default".
    pub fn namespace(&self) -> &str {
        match self.metadata().namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => DEFAULT_NAMESPACE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in [
            Kind::Pod,
            Kind::Job,
            Kind::Deployment,
            Kind::ReplicaSet,
            Kind::ConfigMap,
            Kind::Secret,
        ] {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Kind::from_name("pod"), None);
        assert_eq!(Kind::Deployment.api_version(), "apps/v1");
        assert_eq!(Kind::Job.api_version(), "batch/v1");
        assert_eq!(Kind::ReplicaSet.to_string(), "ReplicaSet");
    }

    #[test]
    fn default_namespace_and_name() {
        let mut pod = Pod::default();
        let object = Object::Pod(pod.clone());
        assert_eq!(object.namespace(), "default");
        assert_eq!(object.name(), "");
        pod.metadata.name = Some("p".into());
        pod.metadata.namespace = Some("team".into());
        let object = Object::Pod(pod);
        assert_eq!(object.name(), "p");
        assert_eq!(object.namespace(), "team");
        assert_eq!(object.kind(), Kind::Pod);
    }
}
