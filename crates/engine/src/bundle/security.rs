//! Capabilities (`--cap-add/--cap-drop`), seccomp, masked and read-only
//! paths, rlimits, and what `--privileged` lifts.
//!
//! Privileged: every capability this kernel knows and this process holds in
//! its bounding set, no seccomp filter, no masked or read-only paths, sysfs
//! and cgroupfs read-write (see `mounts`), and a device cgroup that allows
//! every device (see `resources`). The host's device nodes are not mounted
//! into the container's /dev.

use std::path::Path;

use serde_json::{Value, json};

use super::BundleError;
use crate::request::{ContainerRequest, SeccompMode, Ulimit};
use crate::request_parse::{ULIMITS, UNLIMITED};

/// Every capability, in kernel number order (CAP_CHOWN is 0).
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The capabilities a container can be given: those this kernel knows (by
/// /proc/sys/kernel/cap_last_cap) that are in this process's bounding set
/// (a capability dropped from it can never be granted again).
fn kernel_caps() -> Vec<&'static str> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .take(last + 1)
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// `net_admin`, `CAP_NET_ADMIN` → `CAP_NET_ADMIN`; "ALL" stays.
fn normalize(flag: &'static str, name: &str) -> Result<String, BundleError> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(BundleError::flag(
            flag,
            name,
            "unknown capability; use a name like NET_ADMIN or CAP_SYS_PTRACE, or ALL",
        ))
    }
}

/// The bounding/effective/permitted set, Docker's way: `--cap-add ALL`
/// starts from every capability, `--cap-drop ALL` from none, else from the
/// default set; then the adds, then the drops.
pub fn capabilities(req: &ContainerRequest) -> Result<Vec<String>, BundleError> {
    let add = req
        .cap_add
        .iter()
        .map(|c| normalize("--cap-add", c))
        .collect::<Result<Vec<_>, _>>()?;
    let drop = req
        .cap_drop
        .iter()
        .map(|c| normalize("--cap-drop", c))
        .collect::<Result<Vec<_>, _>>()?;
    let kernel = kernel_caps();
    if req.privileged {
        return Ok(kernel.iter().map(|c| c.to_string()).collect());
    }
    let all = |v: &[String]| v.iter().any(|c| c == "ALL");
    let mut set: Vec<String> = if all(&add) {
        kernel.iter().map(|c| c.to_string()).collect()
    } else if all(&drop) {
        Vec::new()
    } else {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    };
    if !all(&add) {
        for (c, given) in add.into_iter().zip(&req.cap_add) {
            if !kernel.contains(&c.as_str()) {
                return Err(BundleError::flag(
                    "--cap-add",
                    given,
                    "this host cannot grant it (the kernel lacks it or peapod runs without it)",
                ));
            }
            if !set.contains(&c) {
                set.push(c);
            }
        }
    }
    set.retain(|c| !drop.contains(c) && kernel.contains(&c.as_str()));
    Ok(set)
}

/// Seccomp, masked/read-only paths and privileged's lifts, into `linux`.
pub fn apply(
    req: &ContainerRequest,
    caps: &[String],
    linux: &mut Value,
) -> Result<(), BundleError> {
    let Some(obj) = linux.as_object_mut() else {
        return Err(BundleError::Spec("linux is not an object".into()));
    };
    if req.privileged {
        obj.remove("seccomp");
        obj.remove("maskedPaths");
        obj.remove("readonlyPaths");
        return Ok(());
    }
    match &req.security.seccomp {
        SeccompMode::Unconfined => {
            obj.remove("seccomp");
        }
        SeccompMode::Default => {
            let profile = pea_runtime::seccomp::default_profile(caps);
            let v = serde_json::to_value(profile).map_err(|e| BundleError::Spec(e.to_string()))?;
            obj.insert("seccomp".into(), v);
        }
        SeccompMode::File(path) => {
            obj.insert("seccomp".into(), load_profile(path, caps)?);
        }
    }
    Ok(())
}

/// The seccomp architecture of this machine and Docker's name for it.
fn native_arch() -> (&'static str, &'static str) {
    if cfg!(target_arch = "x86_64") {
        ("SCMP_ARCH_X86_64", "amd64")
    } else if cfg!(target_arch = "aarch64") {
        ("SCMP_ARCH_AARCH64", "arm64")
    } else if cfg!(target_arch = "riscv64") {
        ("SCMP_ARCH_RISCV64", "riscv64")
    } else if cfg!(target_arch = "s390x") {
        ("SCMP_ARCH_S390X", "s390x")
    } else {
        ("SCMP_ARCH_PPC64LE", "ppc64le")
    }
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether a Docker profile rule applies: every capability its `includes`
/// names is held and the architecture is listed (when any is), and none of
/// its `excludes` holds. Kernel versions are not checked.
fn rule_applies(rule: &Value, caps: &[String], arch: &str) -> bool {
    let held = |c: &&str| caps.iter().any(|h| h == c);
    let (inc, exc) = (&rule["includes"], &rule["excludes"]);
    let inc_arches = strs(&inc["arches"]);
    strs(&inc["caps"]).iter().all(held)
        && (inc_arches.is_empty() || inc_arches.contains(&arch))
        && !strs(&exc["caps"]).iter().any(held)
        && !strs(&exc["arches"]).contains(&arch)
}

/// Docker's profile shape (`archMap`, rules with `includes`/`excludes`,
/// `name`) to the OCI `LinuxSeccomp` shape; an OCI profile passes unchanged.
pub fn docker_to_oci(mut p: Value, caps: &[String]) -> Value {
    let (native, docker_arch) = native_arch();
    if let Some(map) = p.get("archMap").and_then(Value::as_array).cloned() {
        let mut arches = Vec::new();
        for a in &map {
            if a["architecture"] == native {
                arches.push(a["architecture"].clone());
                arches.extend(
                    a["subArchitectures"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                );
            }
        }
        if let Some(o) = p.as_object_mut() {
            o.remove("archMap");
            if !arches.is_empty() {
                o.insert("architectures".into(), Value::Array(arches));
            }
        }
    }
    if let Some(rules) = p.get_mut("syscalls").and_then(Value::as_array_mut) {
        rules.retain(|r| rule_applies(r, caps, docker_arch));
        for r in rules.iter_mut() {
            if let Some(o) = r.as_object_mut() {
                o.remove("includes");
                o.remove("excludes");
                o.remove("comment");
                if let Some(name) = o.remove("name") {
                    o.entry("names").or_insert_with(|| json!([name]));
                }
            }
        }
    }
    p
}

fn load_profile(path: &Path, caps: &[String]) -> Result<Value, BundleError> {
    let err = |reason: String| BundleError::Seccomp {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let raw: Value = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
    let oci = docker_to_oci(raw, caps);
    pea_runtime::seccomp::check_names(&oci).map_err(err)?;
    serde_json::from_value::<oci_spec::runtime::LinuxSeccomp>(oci.clone())
        .map_err(|e| err(e.to_string()))?;
    Ok(oci)
}

/// The hard limit of this process for `resource`, as the kernel reports it.
fn current_hard(resource: &str) -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit};
    let r = match resource {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        _ => return None,
    };
    getrlimit(r).ok().map(|(_, hard)| hard)
}

/// Docker's default open-file limit, clamped to this process's hard limit.
pub const DEFAULT_NOFILE: u64 = 1_048_576;

fn show(v: u64) -> String {
    if v == UNLIMITED {
        "-1".into()
    } else {
        v.to_string()
    }
}

/// `process.rlimits`: the `--ulimit`s, plus nofile when not given.
pub fn rlimits(ulimits: &[Ulimit]) -> Result<Value, BundleError> {
    let mut out = Vec::new();
    for u in ulimits {
        let Some((_, typ)) = ULIMITS.iter().find(|(n, _)| *n == u.name) else {
            return Err(BundleError::flag(
                "--ulimit",
                &u.name,
                "unknown limit; use nofile, nproc, core, memlock, stack, ...",
            ));
        };
        if let Some(max) = current_hard(typ)
            && max != UNLIMITED
            && u.hard > max
        {
            return Err(BundleError::flag(
                "--ulimit",
                &format!("{}={}:{}", u.name, show(u.soft), show(u.hard)),
                format!(
                    "the hard limit may not exceed this host's {max} (raising it needs CAP_SYS_RESOURCE)"
                ),
            ));
        }
        out.retain(|r: &Value| r["type"] != *typ);
        out.push(json!({"type": typ, "soft": u.soft, "hard": u.hard}));
    }
    if !ulimits.iter().any(|u| u.name == "nofile") {
        let n = current_hard("RLIMIT_NOFILE").map_or(DEFAULT_NOFILE, |h| h.min(DEFAULT_NOFILE));
        out.push(json!({"type": "RLIMIT_NOFILE", "soft": n, "hard": n}));
    }
    Ok(Value::Array(out))
}
