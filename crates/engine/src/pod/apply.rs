//! `apply`: Kubernetes objects into running pods. A Pod is one pod; a Job,
//! Deployment or ReplicaSet is a record and a controller process that
//! makes the pods (see [`super::job`], [`super::deployment`]). The object
//! as applied is kept, so applying the same manifest again changes nothing
//! and a changed one replaces what it made (a Job changes only its mutable
//! fields, in place).

use std::collections::{BTreeMap, VecDeque};

use peapod_kube::Object;
use peapod_kube::k8s_openapi::api::core::v1::PodSpec;
use peapod_kube::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::kube::{PodMeta, plan};
use super::launch::{PendingPod, PodLaunch};
use crate::containers::{Engine, EngineError};

/// What apply did to one object (kubectl's words).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `pod/name`, `job.batch/name`, `configmap/name`.
    pub object: String,
    /// created, configured or unchanged.
    pub action: &'static str,
}

fn labels(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

fn namespace(meta: &ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

impl Engine {
    /// Applies `objects` in order: ConfigMaps and Secrets first (they feed
    /// the pods' volumes and env), then pods and jobs.
    pub fn apply(&self, objects: &[Object]) -> Result<Vec<Applied>, EngineError> {
        let mut config: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
        let mut out = Vec::new();
        for o in objects {
            match o {
                Object::ConfigMap(c) => {
                    let mut data: BTreeMap<String, Vec<u8>> = c
                        .data
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.into_bytes()))
                        .collect();
                    for (k, v) in c.binary_data.clone().unwrap_or_default() {
                        data.insert(k, v.0);
                    }
                    config.insert(c.metadata.name.clone().unwrap_or_default(), data);
                    out.push(Applied {
                        object: format!(
                            "configmap/{}",
                            c.metadata.name.clone().unwrap_or_default()
                        ),
                        action: "configured",
                    });
                }
                Object::Secret(s) => {
                    let mut data: BTreeMap<String, Vec<u8>> = s
                        .data
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    for (k, v) in s.string_data.clone().unwrap_or_default() {
                        data.insert(k, v.into_bytes());
                    }
                    config.insert(s.metadata.name.clone().unwrap_or_default(), data);
                    out.push(Applied {
                        object: format!("secret/{}", s.metadata.name.clone().unwrap_or_default()),
                        action: "configured",
                    });
                }
                _ => {}
            }
        }
        // Pods come up several at a time: each has its own supervisor.
        let mut window = PodWindow::new();
        for o in objects {
            if !matches!(o, Object::Pod(_)) {
                // What follows may refer to the pods before it.
                window.drain(self, &mut out)?;
            }
            match o {
                Object::Pod(p) => {
                    let spec = p.spec.clone().unwrap_or_default();
                    let manifest = serde_json::to_value(p).unwrap_or_default();
                    let name = p.metadata.name.clone().unwrap_or_default();
                    let object = format!("pod/{name}");
                    let begun = self.begin_apply_pod(
                        &name,
                        &p.metadata,
                        &spec,
                        "Always",
                        None,
                        None,
                        manifest,
                        &config,
                    );
                    match begun {
                        Ok((action, None)) => out.push(Applied { object, action }),
                        Ok((action, Some(pending))) => {
                            window.push(self, Applied { object, action }, pending, &mut out)?
                        }
                        Err(e) => {
                            let _ = window.drain(self, &mut out);
                            return Err(e);
                        }
                    }
                }
                Object::Job(j) => {
                    let name = j.metadata.name.clone().unwrap_or_default();
                    let action = self.apply_job(j, &config)?;
                    out.push(Applied {
                        object: format!("job.batch/{name}"),
                        action,
                    });
                }
                Object::Deployment(d) => {
                    let spec = d.spec.clone();
                    let name = d.metadata.name.clone().unwrap_or_default();
                    let action = self.apply_controller(super::deployment::ControllerApply {
                        kind: super::deployment::ControllerKind::Deployment,
                        name: &name,
                        namespace: &namespace(&d.metadata),
                        manifest: serde_json::to_value(d).unwrap_or_default(),
                        template: spec.template.clone(),
                        replicas: spec.replicas.unwrap_or(1).max(0) as u32,
                        config: &config,
                    })?;
                    out.push(Applied {
                        object: format!("deployment.apps/{name}"),
                        action,
                    });
                }
                Object::ReplicaSet(r) => {
                    let spec = r.spec.clone();
                    let name = r.metadata.name.clone().unwrap_or_default();
                    let action = self.apply_controller(super::deployment::ControllerApply {
                        kind: super::deployment::ControllerKind::ReplicaSet,
                        name: &name,
                        namespace: &namespace(&r.metadata),
                        manifest: serde_json::to_value(r).unwrap_or_default(),
                        template: spec.template.clone().unwrap_or_default(),
                        replicas: spec.replicas.unwrap_or(1).max(0) as u32,
                        config: &config,
                    })?;
                    out.push(Applied {
                        object: format!("replicaset.apps/{name}"),
                        action,
                    });
                }
                Object::ConfigMap(_) | Object::Secret(_) => {}
            }
        }
        window.drain(self, &mut out)?;
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_pod(
        &self,
        name: &str,
        meta: &ObjectMeta,
        spec: &PodSpec,
        default_restart: &str,
        max_restarts: Option<u32>,
        owner: Option<String>,
        manifest: serde_json::Value,
        config: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    ) -> Result<&'static str, EngineError> {
        let (action, pending) = self.begin_apply_pod(
            name,
            meta,
            spec,
            default_restart,
            max_restarts,
            owner,
            manifest,
            config,
        )?;
        if let Some(p) = pending {
            self.finish_pod(p)?;
        }
        Ok(action)
    }

    /// `apply_pod` up to the pod's supervisor running; None when the pod
    /// is unchanged.
    #[allow(clippy::too_many_arguments)]
    fn begin_apply_pod(
        &self,
        name: &str,
        meta: &ObjectMeta,
        spec: &PodSpec,
        default_restart: &str,
        max_restarts: Option<u32>,
        owner: Option<String>,
        manifest: serde_json::Value,
        config: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    ) -> Result<(&'static str, Option<PendingPod>), EngineError> {
        let ns = namespace(meta);
        let action = match self.pods.find(&ns, name)? {
            Some(p) if p.manifest == manifest && !p.deleting => return Ok(("unchanged", None)),
            Some(p) => {
                self.delete_pod(&p.id, None)?;
                "configured"
            }
            None => "created",
        };
        let uid = peapod_kube::names::new_uid();
        let volumes_dir = self.paths.root.join("pods").join("volumes").join(&uid);
        let plan = plan(
            &PodMeta {
                name,
                namespace: &ns,
                uid: &uid,
                labels: labels(meta),
                volumes_dir: &volumes_dir,
                config,
                max_restarts,
            },
            spec,
            default_restart,
        );
        let plan = match plan {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&volumes_dir);
                return Err(e);
            }
        };
        let pending = self.begin_pod(PodLaunch {
            plan,
            uid,
            owner,
            manifest,
        })?;
        Ok((action, Some(pending)))
    }
}

/// The pods of one apply coming up at once, finished (and reported) in
/// the order they were applied.
struct PodWindow {
    pending: VecDeque<(Applied, PendingPod)>,
    limit: usize,
}

impl PodWindow {
    fn new() -> Self {
        // Bringing a pod up waits on its network plugins and the disk as
        // much as on a CPU: a few per core.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PodWindow {
            pending: VecDeque::new(),
            limit: (cores * 2).clamp(2, 8),
        }
    }

    fn push(
        &mut self,
        engine: &Engine,
        applied: Applied,
        pod: PendingPod,
        out: &mut Vec<Applied>,
    ) -> Result<(), EngineError> {
        self.pending.push_back((applied, pod));
        if self.pending.len() >= self.limit
            && let Err(e) = self.finish_oldest(engine, out)
        {
            // The others are up or failing on their own (a failed one
            // removes itself): wait for them, then report this one.
            let _ = self.drain(engine, out);
            return Err(e);
        }
        Ok(())
    }

    fn finish_oldest(
        &mut self,
        engine: &Engine,
        out: &mut Vec<Applied>,
    ) -> Result<(), EngineError> {
        let Some((applied, pod)) = self.pending.pop_front() else {
            return Ok(());
        };
        engine.finish_pod(pod)?;
        out.push(applied);
        Ok(())
    }

    /// Waits for every pending pod; the first error, after all of them.
    fn drain(&mut self, engine: &Engine, out: &mut Vec<Applied>) -> Result<(), EngineError> {
        let mut first = Ok(());
        while !self.pending.is_empty() {
            if let Err(e) = self.finish_oldest(engine, out)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }
}
