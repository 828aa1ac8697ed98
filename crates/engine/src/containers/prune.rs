//! `container prune` and `system prune`: stopped containers removed, and
//! what crashes left behind reconciled.

use std::collections::HashSet;

use super::{Engine, EngineError, Reconciled};

/// What a prune removed.
#[derive(Debug, Default, Clone)]
pub struct Pruned {
    /// Ids of the containers removed.
    pub containers: Vec<String>,
    /// What reconciling cleaned (system prune only).
    pub reconciled: Reconciled,
}

impl Engine {
    /// Removes every container that is not running or restarting, as
    /// `docker container prune`. Containers of a pod are the pod's to
    /// remove (its supervisor restarts them) and are left alone.
    pub fn prune_containers(&self) -> Result<Vec<String>, EngineError> {
        let in_pods: HashSet<String> = self
            .pods
            .list()
            .unwrap_or_default()
            .iter()
            .flat_map(|p| p.containers.iter().filter_map(|c| c.container_id.clone()))
            .collect();
        let mut out = Vec::new();
        for r in self.store.list()? {
            if self.view(&r).status.is_active() || in_pods.contains(&r.id) {
                continue;
            }
            match self.remove(&r.id, false, false) {
                Ok(()) => out.push(r.id),
                // Started or removed meanwhile.
                Err(EngineError::WrongState { .. })
                | Err(EngineError::Record(crate::record::RecordError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Reconciles what crashes left, then removes stopped containers.
    pub fn prune_system(&self) -> Result<Pruned, EngineError> {
        let reconciled = self.reconcile()?;
        let containers = self.prune_containers()?;
        Ok(Pruned {
            containers,
            reconciled,
        })
    }
}
