//! `linux.namespaces` from the plan, and the user namespace's id mappings.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{BundleError, NamespacePlan, NsChoice};
use crate::request::{ContainerRequest, IpcMode, NetworkMode, PidMode, UtsMode};
use crate::userns::IdRange;

/// Mount and cgroup namespaces are always new; network, IPC, PID and UTS
/// follow the plan; a user namespace when the caller mapped ids: `Some(None)`
/// a new one, `Some(Some(path))` the one at `path`.
pub fn namespaces(plan: &NamespacePlan, userns: Option<Option<&Path>>) -> Value {
    let mut out = vec![json!({"type": "mount"}), json!({"type": "cgroup"})];
    for (typ, choice) in [
        ("network", &plan.net),
        ("ipc", &plan.ipc),
        ("pid", &plan.pid),
        ("uts", &plan.uts),
    ] {
        match choice {
            NsChoice::New => out.push(json!({"type": typ})),
            NsChoice::Host => {}
            NsChoice::Join(path) => out.push(json!({"type": typ, "path": path})),
        }
    }
    match userns {
        Some(None) => out.push(json!({"type": "user"})),
        Some(Some(path)) => out.push(json!({"type": "user", "path": path})),
        None => {}
    }
    Value::Array(out)
}

/// `linux.uidMappings` / `linux.gidMappings`.
pub fn mappings(ranges: &[IdRange]) -> Value {
    Value::Array(
        ranges
            .iter()
            .map(|r| json!({"containerID": r.container_id, "hostID": r.host_id, "size": r.size}))
            .collect(),
    )
}

impl NamespacePlan {
    /// The plan for `req`'s `--network/--ipc/--pid/--uts`. `join(container,
    /// ns)` finds the namespace file of another container (`ns` is the
    /// /proc/PID/ns name: "net", "ipc", "pid").
    pub fn from_request(
        req: &ContainerRequest,
        join: &dyn Fn(&str, &str) -> Result<PathBuf, BundleError>,
    ) -> Result<Self, BundleError> {
        let net = match &req.network {
            NetworkMode::Host => NsChoice::Host,
            NetworkMode::Container(c) => NsChoice::Join(join(c, "net")?),
            NetworkMode::Namespace(p) => NsChoice::Join(p.clone()),
            NetworkMode::None | NetworkMode::Default | NetworkMode::Bridge(_) => NsChoice::New,
        };
        let ipc = match &req.ipc {
            IpcMode::Host => NsChoice::Host,
            IpcMode::Container(c) => NsChoice::Join(join(c, "ipc")?),
            IpcMode::Namespace(p) => NsChoice::Join(p.clone()),
            IpcMode::Private | IpcMode::Shareable => NsChoice::New,
        };
        let pid = match &req.pid {
            PidMode::Host => NsChoice::Host,
            PidMode::Container(c) => NsChoice::Join(join(c, "pid")?),
            PidMode::Namespace(p) => NsChoice::Join(p.clone()),
            PidMode::Private => NsChoice::New,
        };
        let uts = match req.uts {
            UtsMode::Host => NsChoice::Host,
            UtsMode::Private => NsChoice::New,
        };
        Ok(NamespacePlan { net, ipc, pid, uts })
    }
}
