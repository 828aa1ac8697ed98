//! After a crash: network attachments, namespaces, mounts and runtime state
//! whose container record is gone are released, and records whose
//! processes are all gone are marked exited.

use std::collections::HashSet;

use super::{Engine, EngineError, Status};
use crate::record::State;

/// What `reconcile` cleaned.
#[derive(Debug, Default, Clone)]
pub struct Reconciled {
    /// Network attachments released.
    pub networks: Vec<String>,
    /// Runtime containers deleted.
    pub runtime: Vec<String>,
    /// Records marked exited (their processes were gone).
    pub records: Vec<String>,
}

impl Engine {
    /// Releases what no record owns any more, and settles records whose
    /// supervisor, monitor and process all died.
    pub fn reconcile(&self) -> Result<Reconciled, EngineError> {
        let records = self.store.list()?;
        let live: HashSet<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut out = Reconciled {
            networks: self.networks.reconcile(&|id| live.contains(id))?,
            ..Default::default()
        };
        for c in self.runtime.list().unwrap_or_default() {
            if !live.contains(&c.id) {
                let _ = self.runtime.delete(&c.id, true);
                out.runtime.push(c.id);
            }
        }
        for r in &records {
            let view = self.view(r);
            if matches!(r.state, State::Running { .. } | State::Restarting { .. })
                && let Status::Exited {
                    code,
                    oom_killed,
                    finished_at,
                } = view.status
            {
                let _ = self.runtime.delete(&r.id, true);
                self.store.update(&r.id, |rec| {
                    rec.state = State::Exited {
                        code,
                        oom_killed,
                        finished_at,
                    };
                    rec.monitor = None;
                    rec.supervisor = None;
                })?;
                out.records.push(r.id.clone());
            }
        }
        Ok(out)
    }
}
