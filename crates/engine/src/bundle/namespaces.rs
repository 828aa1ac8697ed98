//! `linux.namespaces` from the plan, and the user namespace's id mappings.

use serde_json::{Value, json};

use super::{NamespacePlan, NsChoice};
use crate::userns::IdRange;

/// Mount and cgroup namespaces are always new; network, IPC, PID and UTS
/// follow the plan; a user namespace when the caller mapped ids.
pub fn namespaces(plan: &NamespacePlan, userns: bool) -> Value {
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
    if userns {
        out.push(json!({"type": "user"}));
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
