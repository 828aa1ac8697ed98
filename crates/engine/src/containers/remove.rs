//! `rm`: everything a container had — its runtime state, network
//! attachment, root filesystem mount and snapshot, private uid range, its
//! anonymous volumes when asked, its record and name.

use std::time::Duration;

use peapod_image::snapshot::mount;

use super::{Engine, EngineError, Status};
use crate::record::Record;

/// How long `rm -f` waits for a killed container to end.
const FORCE_WAIT: Duration = Duration::from_secs(10);

impl Engine {
    /// Removes container `key`. A running one only with `force` (killed
    /// first). `volumes`: remove its anonymous volumes too.
    pub fn remove(&self, key: &str, force: bool, volumes: bool) -> Result<(), EngineError> {
        let record = self.store.resolve(key)?;
        let view = self.view(&record);
        if view.status.is_active() {
            if !force {
                return Err(EngineError::WrongState {
                    name: record.name.clone(),
                    state: view.status.word().into(),
                    fix: "stop it first, or remove it with rm -f",
                });
            }
            self.store
                .update(&record.id, |r| r.stopped_by_user = true)?;
            if let Status::Running { .. } = view.status {
                let kill = pea_runtime::SignalNumber::parse("9").expect("SIGKILL");
                let _ = self.runtime.kill(&record.id, kill, true);
                self.wait_ended(&record.id, FORCE_WAIT, libc::SIGKILL);
            }
            if let Some(s) = record.supervisor.filter(|s| s.alive()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(s.pid),
                    nix::sys::signal::Signal::SIGUSR1,
                );
            }
            self.wait_supervisor(&record.id);
        }
        let record = match self.store.load(&record.id) {
            Ok(r) => r,
            // Its supervisor removed it (`--rm`) meanwhile.
            Err(crate::record::RecordError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.release(&record, volumes || record.setup.request.auto_remove)?;
        self.store.remove(&record.id)?;
        Ok(())
    }

    /// Frees what `create` made for `record` (each step is idempotent, so a
    /// removal cut short can be run again).
    pub(crate) fn release(&self, record: &Record, volumes: bool) -> Result<(), EngineError> {
        let id = &record.id;
        if self.runtime.state(id).is_ok() {
            self.runtime.delete(id, true)?;
        }
        if record.setup.request.cgroup_parent.is_none() {
            let parent = std::path::Path::new(super::CGROUP_PARENT);
            pea_runtime::cgroups::remove_unused(parent, parent);
        }
        self.networks.detach(id)?;
        let rootfs = self.store.dir(id).join("rootfs");
        mount::unmount(&rootfs).map_err(peapod_image::ImageError::from)?;
        mount::unmount(&self.store.dir(id).join("shm")).map_err(peapod_image::ImageError::from)?;
        if !record.setup.snapshot.is_empty() {
            let images = self.images()?;
            match images.snapshots().remove(&record.setup.snapshot) {
                Ok(()) | Err(peapod_image::snapshot::SnapshotError::NotFound(_)) => {}
                Err(e) => return Err(peapod_image::ImageError::from(e).into()),
            }
        }
        self.userns.release(id)?;
        if volumes {
            for v in &record.setup.anonymous_volumes {
                let _ = self.volumes.remove(v, true, &[]);
            }
        }
        let _ = std::fs::remove_file(self.socket(id));
        Ok(())
    }
}
