//! `create`: a record, a writable snapshot of the image mounted as the root
//! filesystem, the network attachment, and the OCI bundle. Anything made
//! before a failure is undone before the error is returned.

use std::path::{Path, PathBuf};

use peapod_image::snapshot::mount;

use super::{Engine, EngineError, io};
use crate::bundle::{BundleContext, NamespacePlan, NsChoice, write_bundle};
use crate::network::Attachment;
use crate::record::{NewContainer, Record, Setup, State};
use crate::request::{ContainerRequest, IpcMode, NetworkMode, PidMode, UsernsMode, UtsMode};

/// What has been made so far, undone on drop unless disarmed.
struct Undo<'a> {
    engine: &'a Engine,
    id: String,
    rootfs: Option<PathBuf>,
    shm: Option<PathBuf>,
    /// The image service and the writable snapshot's key.
    snapshot: Option<(&'a peapod_image::ImageService, String)>,
    network: bool,
    userns: bool,
    volumes: Vec<String>,
    armed: bool,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let e = self.engine;
        if self.network {
            let _ = e.networks.detach(&self.id);
        }
        if let Some(rootfs) = &self.rootfs {
            let _ = mount::unmount(rootfs);
        }
        if let Some(shm) = &self.shm {
            let _ = mount::unmount(shm);
        }
        if let Some((images, key)) = &self.snapshot {
            let _ = images.snapshots().remove(key);
        }
        if self.userns {
            let _ = e.userns.release(&self.id);
        }
        for v in &self.volumes {
            let _ = e.volumes.remove(v, true, &[]);
        }
        let _ = e.store.remove(&self.id);
    }
}

impl Engine {
    /// Makes container `req` from its image, ready to start.
    pub fn create(&self, req: &ContainerRequest) -> Result<Record, EngineError> {
        let images = self.images()?;
        let image = images.load(&req.image)?;
        // Joined namespaces are looked up before anything is made.
        let plan_net = self.net_plan(&req.network)?;
        let plan = NamespacePlan {
            net: plan_net.clone(),
            ipc: match &req.ipc {
                IpcMode::Private | IpcMode::Shareable => NsChoice::New,
                IpcMode::Host => NsChoice::Host,
                IpcMode::Container(c) => NsChoice::Join(self.ns_of(c, "ipc")?),
                IpcMode::Namespace(p) => NsChoice::Join(p.clone()),
            },
            pid: match &req.pid {
                PidMode::Private => NsChoice::New,
                PidMode::Host => NsChoice::Host,
                PidMode::Container(c) => NsChoice::Join(self.ns_of(c, "pid")?),
                PidMode::Namespace(p) => NsChoice::Join(p.clone()),
            },
            uts: match req.uts {
                UtsMode::Private => NsChoice::New,
                UtsMode::Host => NsChoice::Host,
            },
        };
        let record = self.store.create(NewContainer {
            name: req.name.clone(),
            image: req.image.clone(),
            command: req.command.clone(),
            restart_policy: req.restart,
            setup: Setup {
                request: req.clone(),
                image_id: image.id().to_string(),
                ..Default::default()
            },
        })?;
        let id = record.id.clone();
        let mut undo = Undo {
            engine: self,
            id: id.clone(),
            rootfs: None,
            shm: None,
            snapshot: None,
            network: false,
            userns: false,
            volumes: Vec::new(),
            armed: true,
        };
        let dir = self.store.dir(&id);
        let key = format!("ctr-{id}");
        let mounts = images.prepare_rootfs(&image, &key)?;
        undo.snapshot = Some((&images, key.clone()));
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).map_err(io("root filesystem", &rootfs))?;
        mount::mount_all(&mounts, &rootfs).map_err(peapod_image::ImageError::from)?;
        undo.rootfs = Some(rootfs.clone());

        let mut attachment: Option<Attachment> = None;
        let mut plan = plan;
        if matches!(req.network, NetworkMode::Default | NetworkMode::Bridge(_)) {
            let name = match &req.network {
                NetworkMode::Bridge(n) => n.as_deref(),
                _ => None,
            };
            if name.is_none() {
                self.networks.ensure_default()?;
            }
            undo.network = true;
            let a = self.networks.attach(&id, name, &req.publish)?;
            plan.net = NsChoice::Join(a.netns.clone());
            attachment = Some(a);
        } else if !req.publish.is_empty() {
            return Err(EngineError::Invalid(
                "-p needs a bridge network: drop --network none/host/container:, or drop -p".into(),
            ));
        }
        let userns = match req.userns {
            _ if req.userns_mapping.is_some() => req.userns_mapping.clone(),
            UsernsMode::Host => None,
            UsernsMode::Auto => {
                undo.userns = true;
                Some(self.userns.allocate(&id)?)
            }
            UsernsMode::KeepId => Some(crate::userns::keep_id_for_caller()),
        };
        let shm = match &req.ipc {
            IpcMode::Private | IpcMode::Shareable => {
                let p = dir.join("shm");
                mount_shm(&p)?;
                undo.shm = Some(p.clone());
                Some(p)
            }
            IpcMode::Container(c) => self.store.resolve(c)?.setup.shm.filter(|p| p.exists()),
            IpcMode::Host | IpcMode::Namespace(_) => None,
        };
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle).map_err(io("bundle directory", &bundle))?;
        let out = write_bundle(
            req,
            &BundleContext {
                id: &id,
                image: &image.config,
                rootfs: &rootfs,
                bundle_dir: &bundle,
                namespaces: plan,
                ip: attachment.as_ref().and_then(|a| a.ip),
                volumes: &self.volumes,
                userns: userns.clone(),
                userns_path: req.userns_path.clone().filter(|_| userns.is_some()),
                cgroups_path: format!(
                    "{}/{id}",
                    req.cgroup_parent
                        .as_deref()
                        .unwrap_or(super::CGROUP_PARENT)
                        .trim_end_matches('/')
                ),
                shm: shm.clone(),
            },
        );
        let out = out?;
        undo.volumes = out.anonymous_volumes.clone();
        let (record, ()) = self.store.update(&id, |r| {
            r.setup.bundle = bundle.clone();
            r.setup.rootfs = rootfs.clone();
            r.setup.snapshot = key.clone();
            r.setup.hostname = out.hostname.clone();
            r.setup.network = attachment.clone();
            r.setup.mounts = out
                .mounts
                .iter()
                .filter_map(|m| serde_json::to_value(m).ok())
                .collect();
            r.setup.anonymous_volumes = out.anonymous_volumes.clone();
            r.setup.stop_signal = out.stop_signal;
            r.setup.shm = shm.clone();
            r.setup.stop_timeout = req.stop_timeout.unwrap_or(10);
            r.setup.tty = req.tty;
            r.setup.interactive = req.interactive;
            r.setup.userns_range = userns
                .as_ref()
                .and_then(|m| m.uids.first().map(|r| r.host_id));
            r.command = out.args.clone();
            r.state = State::Created;
        })?;
        undo.armed = false;
        Ok(record)
    }

    fn net_plan(&self, mode: &NetworkMode) -> Result<NsChoice, EngineError> {
        Ok(match mode {
            NetworkMode::None => NsChoice::New,
            NetworkMode::Host => NsChoice::Host,
            // Decided once the attachment exists.
            NetworkMode::Default | NetworkMode::Bridge(_) => NsChoice::New,
            NetworkMode::Namespace(p) => NsChoice::Join(p.clone()),
            NetworkMode::Container(c) => {
                let other = self.store.resolve(c)?;
                match &other.setup.network {
                    Some(a) if a.netns.exists() => NsChoice::Join(a.netns.clone()),
                    _ => NsChoice::Join(self.ns_of(c, "net")?),
                }
            }
        })
    }

    /// `/proc/PID/ns/KIND` of running container `key`.
    fn ns_of(&self, key: &str, kind: &str) -> Result<PathBuf, EngineError> {
        let other = self.store.resolve(key)?;
        let view = self.view(&other);
        match view.status {
            super::Status::Running { pid, .. } => Ok(Path::new("/proc")
                .join(pid.to_string())
                .join("ns")
                .join(kind)),
            s => Err(EngineError::WrongState {
                name: other.name.clone(),
                state: s.word().into(),
                fix: "start it first: its namespaces exist only while it runs",
            }),
        }
    }
}

/// The container's own /dev/shm: a 64 MiB tmpfs on the host (as Docker's),
/// so that containers joining its IPC namespace can share it.
fn mount_shm(path: &Path) -> Result<(), EngineError> {
    use nix::mount::{MsFlags, mount};
    std::fs::create_dir_all(path).map_err(io("shm directory", path))?;
    mount(
        Some("shm"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| {
        EngineError::Invalid(format!(
            "mount the container's /dev/shm on {}: {e}",
            path.display()
        ))
    })
}
