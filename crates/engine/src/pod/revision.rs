//! A Deployment's revisions, as Kubernetes keeps them: each pod template
//! the Deployment ran is a ReplicaSet annotated
//! `deployment.kubernetes.io/revision`. A template change makes the next
//! revision, or renumbers the old revision that has that template (which
//! is what a rollback is); the Deployment carries the number of its
//! current one. Old revisions are kept (scaled to 0) up to
//! `spec.revisionHistoryLimit` (10 when unset); past that the oldest ones
//! without pods are dropped.
//!
//! `rollout undo` puts an old revision's template back, `rollout restart`
//! stamps `kubectl.kubernetes.io/restartedAt` on the template; both are a
//! template change that the controller then rolls out.

use std::collections::BTreeSet;
use std::time::SystemTime;

use peapod_kube::k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::{Deserialize, Serialize};

use super::deployment::{ControllerKind, ControllerRecord};
use crate::containers::{Engine, EngineError};
use crate::time::format_rfc3339_nano;

/// The revision annotation of a Deployment and its ReplicaSets.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// What a change was for, copied from the Deployment to its ReplicaSet.
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";
/// The template annotation `rollout restart` sets.
pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// Old revisions kept when `spec.revisionHistoryLimit` is unset.
const DEFAULT_HISTORY_LIMIT: u64 = 10;

/// One revision: a ReplicaSet of the Deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub number: u64,
    /// Its pod-template-hash (the ReplicaSet is `<deploy>-<hash>`).
    pub hash: String,
    pub template: PodTemplateSpec,
    /// When its ReplicaSet was made.
    pub created: String,
    /// `kubernetes.io/change-cause` of the Deployment when it was current.
    pub change_cause: Option<String>,
}

/// What `rollout undo` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollback {
    /// The template of this revision is back (as the newest revision).
    RolledBack(u64),
    /// The current template already is that revision's.
    Skipped(u64),
}

fn change_cause(manifest: &serde_json::Value) -> Option<String> {
    manifest["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION]
        .as_str()
        .map(str::to_string)
}

impl ControllerRecord {
    /// The number of the current revision (0 for a ReplicaSet).
    pub fn revision(&self) -> u64 {
        self.revisions
            .iter()
            .find(|r| r.hash == self.template_hash)
            .map_or(0, |r| r.number)
    }

    /// `spec.revisionHistoryLimit`: old revisions kept.
    pub fn history_limit(&self) -> u64 {
        self.manifest["spec"]["revisionHistoryLimit"]
            .as_u64()
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
    }

    /// Makes the current template the newest revision: a new one, or the
    /// old one with the same template renumbered. The Deployment's
    /// change-cause goes to it.
    pub(super) fn bump_revision(&mut self) {
        if self.kind != ControllerKind::Deployment || self.template_hash.is_empty() {
            return;
        }
        let newest = self.revisions.iter().map(|r| r.number).max().unwrap_or(0);
        match self
            .revisions
            .iter_mut()
            .find(|r| r.hash == self.template_hash)
        {
            Some(r) if r.number == newest => {}
            Some(r) => r.number = newest + 1,
            None => self.revisions.push(Revision {
                number: newest + 1,
                hash: self.template_hash.clone(),
                template: self.template.clone(),
                created: format_rfc3339_nano(SystemTime::now()),
                change_cause: None,
            }),
        }
        self.revisions.sort_by_key(|r| r.number);
        if let Some(cause) = change_cause(&self.manifest)
            && let Some(r) = self
                .revisions
                .iter_mut()
                .find(|r| r.hash == self.template_hash)
        {
            r.change_cause = Some(cause);
        }
    }

    /// Sets the pod template (the manifest is the caller's), making it the
    /// newest revision; whether it changed.
    pub(super) fn set_template(&mut self, template: PodTemplateSpec) -> bool {
        // A record made before revisions were kept gets its first one.
        if self.kind == ControllerKind::Deployment
            && self.revisions.is_empty()
            && !self.template_hash.is_empty()
        {
            self.revisions.push(Revision {
                number: 1,
                hash: self.template_hash.clone(),
                template: self.template.clone(),
                created: self.created.clone(),
                change_cause: None,
            });
        }
        let hash = peapod_kube::names::pod_template_hash(&template);
        let changed = hash != self.template_hash;
        self.template = template;
        self.template_hash = hash;
        self.bump_revision();
        changed
    }

    /// Sets the pod template in the manifest too (as `rollout` changes the
    /// object itself).
    fn replace_template(&mut self, template: PodTemplateSpec) -> bool {
        self.manifest["spec"]["template"] = serde_json::to_value(&template).unwrap_or_default();
        self.set_template(template)
    }

    /// Drops the oldest revisions past the history limit, but for those
    /// that still have pods (`with_pods`: their hashes); whether any went.
    pub(super) fn prune_revisions(&mut self, with_pods: &BTreeSet<String>) -> bool {
        let old: Vec<&Revision> = self
            .revisions
            .iter()
            .filter(|r| r.hash != self.template_hash)
            .collect();
        let excess = old.len().saturating_sub(self.history_limit() as usize);
        let drop: BTreeSet<String> = old
            .iter()
            .take(excess)
            .filter(|r| !with_pods.contains(&r.hash))
            .map(|r| r.hash.clone())
            .collect();
        self.revisions.retain(|r| !drop.contains(&r.hash));
        !drop.is_empty()
    }

    /// The revision `rollout undo` goes to: `to`, or the one before the
    /// current one.
    pub fn rollback_target(&self, to: Option<u64>) -> Result<&Revision, EngineError> {
        let name = &self.name;
        match to.filter(|&n| n > 0) {
            Some(n) => self.revisions.iter().find(|r| r.number == n).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "unable to find specified revision {n} in history of deployment {name:?}: list them with peapod rollout history deployment/{name}"
                ))
            }),
            None => {
                let mut newest_first: Vec<&Revision> = self.revisions.iter().collect();
                newest_first.sort_by_key(|r| std::cmp::Reverse(r.number));
                newest_first.get(1).copied().ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "no rollout history found for deployment {name:?}: it has run one template only"
                    ))
                })
            }
        }
    }
}

impl Engine {
    /// Changes Deployment `namespace/name` with `f` under its lock, then
    /// wakes (or starts) its controller; what `f` returned.
    fn change_deployment<R>(
        &self,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut ControllerRecord) -> Result<R, EngineError>,
    ) -> Result<R, EngineError> {
        let kind = ControllerKind::Deployment;
        let out = self
            .controllers(kind)
            .update(namespace, name, |r| match r {
                Some(mut r) if !r.deleting => match f(&mut r) {
                    Ok(out) => (Some(r), Ok(out)),
                    Err(e) => (None, Err(e)),
                },
                _ => (
                    None,
                    Err(EngineError::Invalid(format!(
                        "deployment {name:?} not found in namespace {namespace:?}"
                    ))),
                ),
            })??;
        self.ensure_controller(kind, namespace, name)?;
        Ok(out)
    }

    /// `rollout undo`: the template of revision `to` (the previous one
    /// when None) becomes the Deployment's again, as its newest revision.
    pub fn rollback_deployment(
        &self,
        namespace: &str,
        name: &str,
        to: Option<u64>,
    ) -> Result<Rollback, EngineError> {
        self.change_deployment(namespace, name, |r| {
            let target = r.rollback_target(to)?.clone();
            if target.hash == r.template_hash {
                return Ok(Rollback::Skipped(target.number));
            }
            // As Kubernetes, the Deployment takes the revision's
            // change-cause.
            let annotations = &mut r.manifest["metadata"]["annotations"];
            match &target.change_cause {
                Some(c) => annotations[CHANGE_CAUSE_ANNOTATION] = serde_json::json!(c),
                None => {
                    if let Some(a) = annotations.as_object_mut() {
                        a.remove(CHANGE_CAUSE_ANNOTATION);
                    }
                }
            }
            r.replace_template(target.template.clone());
            r.generation += 1;
            r.event(
                "Normal",
                "DeploymentRollback",
                format!(
                    "Rolled back deployment {:?} to revision {}",
                    r.name, target.number
                ),
            );
            Ok(Rollback::RolledBack(target.number))
        })
    }

    /// `rollout restart`: stamps the template with the time, so every pod
    /// is replaced by the Deployment's strategy.
    pub fn restart_deployment(&self, namespace: &str, name: &str) -> Result<(), EngineError> {
        self.change_deployment(namespace, name, |r| {
            let mut template = r.template.clone();
            let now = format_rfc3339_nano(SystemTime::now());
            // kubectl's RFC 3339 in seconds.
            let stamp = format!("{}Z", &now[..19]);
            template
                .metadata
                .get_or_insert_default()
                .annotations
                .get_or_insert_default()
                .insert(RESTARTED_AT_ANNOTATION.into(), stamp);
            r.replace_template(template);
            r.generation += 1;
            r.event(
                "Normal",
                "ScalingReplicaSet",
                format!(
                    "Restarted: replica set {} rolls out",
                    peapod_kube::names::replica_set_name(&r.name, &r.template_hash)
                ),
            );
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::deployment::ConfigData;

    fn deployment(limit: Option<u64>) -> ControllerRecord {
        ControllerRecord {
            kind: ControllerKind::Deployment,
            name: "web".into(),
            namespace: "default".into(),
            uid: String::new(),
            created: String::new(),
            manifest: serde_json::json!({"spec": {"revisionHistoryLimit": limit}}),
            template: PodTemplateSpec::default(),
            template_hash: String::new(),
            replicas: 1,
            generation: 1,
            config: ConfigData::new(),
            controller: None,
            deleting: false,
            events: Vec::new(),
            revisions: Vec::new(),
            ready_since: Default::default(),
        }
    }

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .unwrap()
    }

    fn numbers(r: &ControllerRecord) -> Vec<(u64, String)> {
        r.revisions
            .iter()
            .map(|v| {
                let image = v.template.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap();
                (v.number, image)
            })
            .collect()
    }

    #[test]
    fn a_template_change_is_the_next_revision_and_an_old_template_is_renumbered() {
        let mut r = deployment(None);
        r.set_template(template("v1"));
        assert!(r.set_template(template("v2")));
        assert!(!r.set_template(template("v2")));
        r.set_template(template("v3"));
        assert_eq!(r.revision(), 3);
        assert_eq!(
            numbers(&r),
            [(1, "v1".into()), (2, "v2".into()), (3, "v3".into())]
        );
        // Undo: the previous revision's template, numbered 4.
        let target = r.rollback_target(None).unwrap().clone();
        assert_eq!(target.number, 2);
        r.replace_template(target.template);
        assert_eq!(
            numbers(&r),
            [(1, "v1".into()), (3, "v3".into()), (4, "v2".into())]
        );
        assert_eq!(r.revision(), 4);
        assert_eq!(r.rollback_target(Some(1)).unwrap().number, 1);
        assert!(r.rollback_target(Some(2)).is_err());
        assert_eq!(
            r.manifest["spec"]["template"]["spec"]["containers"][0]["image"],
            "v2"
        );
    }

    #[test]
    fn old_revisions_past_the_limit_go_unless_they_have_pods() {
        let mut r = deployment(Some(1));
        for v in ["v1", "v2", "v3", "v4"] {
            r.set_template(template(v));
        }
        let v2 = r.revisions[1].hash.clone();
        assert!(r.prune_revisions(&BTreeSet::from([v2.clone()])));
        // v1 went; v2 has pods and stays, over the limit.
        assert_eq!(
            numbers(&r),
            [(2, "v2".into()), (3, "v3".into()), (4, "v4".into())]
        );
        assert!(r.prune_revisions(&BTreeSet::new()));
        assert_eq!(numbers(&r), [(3, "v3".into()), (4, "v4".into())]);
        assert!(!r.prune_revisions(&BTreeSet::new()));
    }

    #[test]
    fn no_history_to_undo_to() {
        let mut r = deployment(None);
        r.set_template(template("v1"));
        let e = r.rollback_target(None).unwrap_err().to_string();
        assert!(e.contains("no rollout history found"), "{e}");
    }

    #[test]
    fn the_change_cause_follows_the_deployment() {
        let mut r = deployment(None);
        r.manifest["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] = "first".into();
        r.set_template(template("v1"));
        r.manifest["metadata"]["annotations"][CHANGE_CAUSE_ANNOTATION] = "second".into();
        r.set_template(template("v2"));
        let causes: Vec<_> = r.revisions.iter().map(|v| v.change_cause.clone()).collect();
        assert_eq!(causes, [Some("first".into()), Some("second".into())]);
    }
}
