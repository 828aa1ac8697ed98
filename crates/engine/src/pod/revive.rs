//! Controllers brought back. Each Deployment, ReplicaSet and Job has one
//! controller process, recorded in its record by pid and start time; one
//! that died (killed, crashed, or the machine rebooted) leaves its object
//! unattended: no pod replaced, no rollout moving. The commands that read
//! or change those objects first call [`Engine::revive_controllers`]: a
//! pid + start-time check per record, and a new controller only for an
//! object that wants one and whose process is gone.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::deployment::ControllerKind;
use super::object_store::{Named, ObjectStore};
use crate::containers::{Engine, EngineError};
use crate::record::ProcRef;

/// A record of an object run by a controller process.
pub trait Controlled: Named {
    /// The controller process last recorded.
    fn controller(&self) -> Option<ProcRef>;
    /// Whether a controller should be running for it now.
    fn wants_controller(&self) -> bool;
    /// Whether it is being deleted (its controller is not to run).
    fn deleting(&self) -> bool;
    fn set_controller(&mut self, c: Option<ProcRef>);
}

/// Makes this process the controller of object `namespace/name`; false
/// when another live controller has it, or it is gone or being deleted.
pub fn claim<T>(store: &ObjectStore<T>, namespace: &str, name: &str) -> Result<bool, EngineError>
where
    T: Controlled + Serialize + DeserializeOwned,
{
    let me = ProcRef::current();
    store.update(namespace, name, |r| match r {
        Some(mut r) if !r.deleting() => {
            if r.controller()
                .is_some_and(|c| c.alive() && Some(c.pid) != me.map(|m| m.pid))
            {
                return (None, false);
            }
            r.set_controller(me);
            (Some(r), true)
        }
        _ => (None, false),
    })
}

/// An object whose controller could not be started again.
#[derive(Debug)]
pub struct ReviveFailure {
    /// `deployment default/web`.
    pub object: String,
    pub error: EngineError,
}

/// Objects of `store` that want a controller and have none alive:
/// namespace and name.
fn orphans<T>(store: &ObjectStore<T>) -> Result<Vec<(String, String)>, EngineError>
where
    T: Controlled + Serialize + DeserializeOwned,
{
    Ok(store
        .list()?
        .into_iter()
        .filter(|r| r.wants_controller() && !r.controller().is_some_and(|c| c.alive()))
        .map(|r| (r.namespace().to_string(), r.name().to_string()))
        .collect())
}

impl Engine {
    /// Starts a controller again for every Deployment, ReplicaSet and Job
    /// whose controller process is gone; what could not be started. Does
    /// nothing but read the records when every controller lives.
    pub fn revive_controllers(&self) -> Vec<ReviveFailure> {
        let mut failed = Vec::new();
        let mut revive =
            |what: &str,
             found: Result<Vec<(String, String)>, EngineError>,
             start: &dyn Fn(&str, &str) -> Result<(), EngineError>| {
                match found {
                    Ok(list) => {
                        for (ns, name) in list {
                            if let Err(error) = start(&ns, &name) {
                                failed.push(ReviveFailure {
                                    object: format!("{what} {ns}/{name}"),
                                    error,
                                });
                            }
                        }
                    }
                    Err(error) => failed.push(ReviveFailure {
                        object: format!("the {what} records"),
                        error,
                    }),
                }
            };
        for kind in [ControllerKind::Deployment, ControllerKind::ReplicaSet] {
            revive(
                kind.word(),
                orphans(&self.controllers(kind)),
                &|ns, name| self.ensure_controller(kind, ns, name),
            );
        }
        revive("job", orphans(&self.jobs()), &|ns, name| {
            self.ensure_job_controller(ns, name)
        });
        failed
    }
}
