//! The config.json `pea spec` writes: a busybox-friendly shell container with
//! the usual namespaces, mounts, masked paths, a minimal capability set and
//! the default seccomp profile ([`crate::seccomp::default_profile`]).

use serde_json::{Value, json};

const CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The default spec; `rootless` adapts it for an unprivileged user
/// (`uid`/`gid` are the caller's): a user namespace mapping them to root,
/// no network namespace, /sys bound from the host, no cgroup mount.
pub fn default_spec(rootless: Option<(u32, u32)>) -> Value {
    let caps = json!(CAPS);
    let mut spec = json!({
        "ociVersion": crate::state::OCI_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "pea",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/sys/devices/virtual/powercap",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ],
            // Locked down by default: the profile for exactly these capabilities.
            "seccomp": crate::seccomp::default_profile(&CAPS)
        }
    });
    if let Some((uid, gid)) = rootless {
        make_rootless(&mut spec, uid, gid);
    }
    spec
}

fn make_rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = &mut spec["linux"];
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| !matches!(n["type"].as_str(), Some("network") | Some("user")));
        ns.push(json!({"type": "user"}));
    }
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.retain(|m| m["type"] != "cgroup");
        for m in mounts.iter_mut() {
            if m["type"] == "devpts"
                && let Some(opts) = m["options"].as_array_mut()
            {
                opts.retain(|o| o != "gid=5");
            }
            if m["type"] == "sysfs" {
                *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_parses_as_a_spec() {
        let s: oci_spec::runtime::Spec = serde_json::from_value(default_spec(None)).unwrap();
        assert_eq!(s.hostname().as_deref(), Some("pea"));
    }

    #[test]
    fn default_has_the_seccomp_profile() {
        for rootless in [None, Some((1000, 1000))] {
            let s: oci_spec::runtime::Spec =
                serde_json::from_value(default_spec(rootless)).unwrap();
            let sc = s.linux().as_ref().unwrap().seccomp().clone().unwrap();
            assert_eq!(
                sc.default_action(),
                oci_spec::runtime::LinuxSeccompAction::ScmpActErrno
            );
            assert_eq!(sc.default_errno_ret(), Some(1));
            crate::seccomp::compile(&sc).unwrap();
        }
    }

    #[test]
    fn rootless_maps_the_caller_and_drops_network() {
        let v = default_spec(Some((1000, 1000)));
        let s: oci_spec::runtime::Spec = serde_json::from_value(v.clone()).unwrap();
        let ns = s.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(
            ns.iter()
                .all(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Network)
        );
        assert!(
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        );
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 1000);
    }
}
