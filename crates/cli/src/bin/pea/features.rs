//! `pea features`: what this runtime supports, in runtime-spec features.md's shape.

use serde_json::{Value, json};

pub fn features() -> Value {
    let caps: Vec<String> = caps::all()
        .iter()
        .map(|c| c.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": pea_runtime::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": pea_runtime::rootfs::options::known_options(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": pea_runtime::seccomp::ACTIONS,
                "operators": pea_runtime::seccomp::OPERATORS,
                "archs": pea_runtime::seccomp::supported_archs(),
                "knownFlags": pea_runtime::seccomp::FLAGS,
                "supportedFlags": pea_runtime::seccomp::supported_flags()
            },
            // Supported (applied when the host runs the LSM; refused when it does not).
            "apparmor": {"enabled": true},
            "selinux": {"enabled": true},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": pea_runtime::rootfs::idmap::supported()}}
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.pea.version": env!("CARGO_PKG_VERSION"),
            // Bundle annotation understood by `create`: the runtime's own
            // init (signal forwarding, zombie reaping) as PID 1.
            (pea_runtime::process::reaper::INIT_ANNOTATION): "true|false"
        }
    })
}
