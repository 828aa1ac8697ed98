//! `linux.seccomp` to a BPF program (in the parent), and loading it (in the
//! container process).

use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use super::bpf::{self, ArchMax, Insn};
use super::{SeccompError, flag, invalid};

/// Syscalls take at most six arguments.
const MAX_ARGS: usize = 6;
/// BPF_MAXINSNS: the kernel's limit on one filter.
const MAX_INSNS: usize = 4096;
/// The largest errno the kernel passes through (MAX_ERRNO).
const MAX_ERRNO: u32 = 4095;

/// A compiled filter: what the container process hands to seccomp(2).
#[derive(Clone)]
pub struct Program {
    insns: Vec<Insn>,
    flags: u32,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("instructions", &self.insns.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .finish()
    }
}

impl Program {
    pub(super) fn from_parts(insns: Vec<Insn>, flags: u32) -> Self {
        Program { insns, flags }
    }

    pub fn instructions(&self) -> &[Insn] {
        &self.insns
    }

    /// SECCOMP_FILTER_FLAG_* passed to seccomp(2).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Some rule notifies a seccomp agent: loading returns a listener.
    pub fn uses_notify(&self) -> bool {
        self.flags & flag::NEW_LISTENER != 0
    }

    /// Installs the filter on the calling thread; returns the notify
    /// listener when [`Program::uses_notify`]. Needs no_new_privileges or
    /// CAP_SYS_ADMIN. Makes one syscall and allocates only on error.
    pub fn load(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let prog = libc::sock_fprog {
            len: self.insns.len() as libc::c_ushort,
            // The kernel only reads the program; Insn has sock_filter's layout.
            filter: self.insns.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `insns`, which outlive the call; the
        // kernel copies the program before returning.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                1, // SECCOMP_SET_MODE_FILTER
                self.flags as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            let e = nix::errno::Errno::last();
            return Err(SeccompError::Load(match e {
                nix::errno::Errno::EACCES => {
                    "the process has neither no_new_privileges nor CAP_SYS_ADMIN (EACCES)".into()
                }
                nix::errno::Errno::EINVAL => format!(
                    "the kernel rejected the filter or its flags {:#x} (EINVAL)",
                    self.flags
                ),
                e => e.to_string(),
            }));
        }
        if self.uses_notify() {
            // SAFETY: with NEW_LISTENER seccomp(2) returns a new descriptor we own.
            Ok(Some(unsafe { OwnedFd::from_raw_fd(rc as i32) }))
        } else {
            Ok(None)
        }
    }
}

fn action_name(a: LinuxSeccompAction) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{a:?}"))
}

/// The libseccomp action for a spec action; `errno` is the spec's
/// errnoRet, only valid with ERRNO and TRACE (runtime-spec: error out).
fn action(
    a: LinuxSeccompAction,
    errno: Option<u32>,
    errno_field: &str,
) -> Result<ScmpAction, SeccompError> {
    use LinuxSeccompAction as A;
    if errno.is_some() && !matches!(a, A::ScmpActErrno | A::ScmpActTrace) {
        return Err(invalid(
            errno_field,
            format!(
                "is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {}; remove it",
                action_name(a)
            ),
        ));
    }
    Ok(match a {
        // SCMP_ACT_KILL has always meant the thread (runc, libseccomp).
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => {
            let e = errno.unwrap_or(libc::EPERM as u32);
            if e > MAX_ERRNO {
                return Err(invalid(
                    errno_field,
                    format!("{e} is not an errno (at most {MAX_ERRNO})"),
                ));
            }
            ScmpAction::Errno(e as i32)
        }
        A::ScmpActTrace => {
            let e = errno.unwrap_or(libc::EPERM as u32);
            let v = u16::try_from(e).map_err(|_| {
                invalid(
                    errno_field,
                    format!("{e} does not fit SCMP_ACT_TRACE's 16 bits"),
                )
            })?;
            ScmpAction::Trace(v)
        }
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActNotify => ScmpAction::Notify,
        A::ScmpActAllow => ScmpAction::Allow,
    })
}

fn operator(op: LinuxSeccompOperator, mask: u64) -> ScmpCompareOp {
    use LinuxSeccompOperator as O;
    match op {
        O::ScmpCmpNe => ScmpCompareOp::NotEqual,
        O::ScmpCmpLt => ScmpCompareOp::Less,
        O::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        O::ScmpCmpEq => ScmpCompareOp::Equal,
        O::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        O::ScmpCmpGt => ScmpCompareOp::Greater,
        O::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(mask),
    }
}

fn arch_name(a: Arch) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{a:?}"))
}

/// The architecture this runtime runs on, as the spec names it.
fn native_arch() -> Option<Arch> {
    if cfg!(target_arch = "x86_64") {
        Some(Arch::ScmpArchX86_64)
    } else if cfg!(target_arch = "x86") {
        Some(Arch::ScmpArchX86)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::ScmpArchAarch64)
    } else if cfg!(target_arch = "arm") {
        Some(Arch::ScmpArchArm)
    } else if cfg!(target_arch = "riscv64") {
        Some(Arch::ScmpArchRiscv64)
    } else if cfg!(target_arch = "s390x") {
        Some(Arch::ScmpArchS390x)
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        Some(Arch::ScmpArchPpc64le)
    } else if cfg!(target_arch = "loongarch64") {
        Some(Arch::ScmpArchLoongarch64)
    } else {
        None
    }
}

fn flag_bits(f: LinuxSeccompFilterFlag) -> u32 {
    match f {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flag::TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => flag::LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flag::SPEC_ALLOW,
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => flag::WAIT_KILLABLE_RECV,
    }
}

fn library(e: impl std::fmt::Display) -> SeccompError {
    SeccompError::Library(e.to_string())
}

pub(super) fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "?".into())
}

/// Validates `linux.seccomp` and compiles it. Errors name the field.
pub fn compile(s: &LinuxSeccomp) -> Result<Program, SeccompError> {
    let default = action(s.default_action(), s.default_errno_ret(), "defaultErrnoRet")?;
    if default == ScmpAction::Notify {
        return Err(invalid(
            "defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action (the runtime's last syscalls before exec would wait for an agent); notify on named syscalls",
        ));
    }
    if s.listener_metadata().is_some() && s.listener_path().is_none() {
        return Err(invalid(
            "listenerMetadata",
            "is set but listenerPath is not; set both or neither",
        ));
    }
    let mut ctx = ScmpFilterContext::new(default).map_err(library)?;

    // Architectures: (spec value, libseccomp token), the native one first.
    let mut arches: Vec<(Arch, ScmpArch)> = Vec::new();
    if let Some(native) = native_arch()
        && let Ok(a) = arch_name(native).parse::<ScmpArch>()
    {
        arches.push((native, a));
    }
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let name = arch_name(*a);
        let field = format!("architectures[{i}]");
        let token: ScmpArch = name
            .parse()
            .map_err(|_| invalid(&field, format!("{name} is not known to libseccomp")))?;
        ctx.add_arch(token).map_err(|e| {
            let why = if e.errno() == Some(libseccomp::error::SeccompErrno::EDOM) {
                // libseccomp keeps one byte order per filter.
                "cannot share a filter with this machine's architecture".to_string()
            } else {
                format!("is not supported by libseccomp {}", libseccomp_version())
            };
            invalid(&field, format!("{name} {why}; remove it"))
        })?;
        match a {
            Arch::ScmpArchNative => {}
            a if arches.iter().any(|(x, _)| x == a) => {}
            a => arches.push((*a, token)),
        }
    }

    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= flag_bits(*f);
    }

    let mut notify_rule = None;
    let mut rules = 0usize;
    let mut names_seen: Vec<&str> = Vec::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("syscalls[{i}]");
        if sc.names().is_empty() {
            return Err(invalid(
                format!("{field}.names"),
                "is empty: name at least one syscall",
            ));
        }
        let act = action(sc.action(), sc.errno_ret(), &format!("{field}.errnoRet"))?;
        let mut conds = Vec::new();
        let mut per_index = [0usize; MAX_ARGS];
        for (j, arg) in sc.args().iter().flatten().enumerate() {
            if arg.index() >= MAX_ARGS {
                return Err(invalid(
                    format!("{field}.args[{j}].index"),
                    format!(
                        "{} is out of range: syscalls have arguments 0 to {}",
                        arg.index(),
                        MAX_ARGS - 1
                    ),
                ));
            }
            per_index[arg.index()] += 1;
            // MASKED_EQ: `value` is the mask, `valueTwo` what the masked
            // argument must equal (libseccomp's datum_a / datum_b, as runc).
            let (op, datum) = match arg.op() {
                LinuxSeccompOperator::ScmpCmpMaskedEq => (
                    operator(arg.op(), arg.value()),
                    arg.value_two().unwrap_or(0),
                ),
                other => (operator(other, 0), arg.value()),
            };
            conds.push(ScmpArgCompare::new(arg.index() as u32, op, datum));
        }
        if act == ScmpAction::Notify {
            if let Some(n) = sc.names().iter().find(|n| n.as_str() == "sendmsg") {
                return Err(invalid(
                    format!("{field}.names"),
                    format!(
                        "include {n}, which SCMP_ACT_NOTIFY cannot be used for: the runtime passes the notify descriptor on with it"
                    ),
                ));
            }
            notify_rule.get_or_insert(i);
        }
        for name in sc.names() {
            if name.is_empty() {
                return Err(invalid(
                    format!("{field}.names"),
                    "holds an empty syscall name",
                ));
            }
            names_seen.push(name);
        }
        if act == default {
            // Redundant, and libseccomp refuses it: skip (as runc).
            continue;
        }
        for name in sc.names() {
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                tracing::debug!(syscall = %name, "seccomp: syscall unknown to libseccomp, skipped");
                continue;
            };
            let add = |ctx: &mut ScmpFilterContext, c: &[ScmpArgCompare]| {
                if c.is_empty() {
                    ctx.add_rule(act, nr).map(drop)
                } else {
                    ctx.add_rule_conditional(act, nr, c).map(drop)
                }
            };
            // Two conditions on one argument cannot both hold in one
            // libseccomp rule: each becomes a rule of its own (runc's rule).
            let result = if per_index.iter().any(|n| *n > 1) {
                conds
                    .iter()
                    .try_for_each(|c| add(&mut ctx, std::slice::from_ref(c)))
            } else {
                add(&mut ctx, &conds)
            };
            result.map_err(|e| invalid(&field, format!("{name}: libseccomp: {e}")))?;
            rules += 1;
        }
    }
    if let Some(i) = notify_rule {
        if s.listener_path().is_none() {
            return Err(invalid(
                "listenerPath",
                format!(
                    "is required: syscalls[{i}] uses SCMP_ACT_NOTIFY; name the seccomp agent's socket"
                ),
            ));
        }
        flags |= flag::NEW_LISTENER;
        if flags & flag::TSYNC != 0 {
            // TSYNC and a listener need TSYNC_ESRCH (the kernel's rule).
            flags |= flag::TSYNC_ESRCH;
        }
    } else {
        // Only meaningful (and only accepted by the kernel) with a listener.
        flags &= !flag::WAIT_KILLABLE_RECV;
    }
    if rules > 32 {
        // A binary tree instead of a linear scan for long profiles (as runc);
        // not fatal where unsupported.
        let _ = ctx.set_ctl_optimize(2);
    }

    let mut insns = bpf::parse(&export(&ctx)?)
        .ok_or_else(|| library("exported program is not whole instructions"))?;
    if needs_enosys_stub(s) {
        let maxes = arch_maxes(&arches, &names_seen);
        let mut stub = bpf::enosys_stub(&maxes);
        stub.append(&mut insns);
        insns = stub;
    }
    if insns.len() > MAX_INSNS {
        return Err(invalid(
            "syscalls",
            format!(
                "compile to {} BPF instructions, more than the kernel's {MAX_INSNS}; merge rules",
                insns.len()
            ),
        ));
    }
    Ok(Program { insns, flags })
}

/// Permissive defaults need no stub; neither does a default of ENOSYS.
fn needs_enosys_stub(s: &LinuxSeccomp) -> bool {
    use LinuxSeccompAction as A;
    match s.default_action() {
        A::ScmpActAllow | A::ScmpActLog | A::ScmpActTrace => false,
        A::ScmpActErrno => s.default_errno_ret() != Some(libc::ENOSYS as u32),
        _ => true,
    }
}

/// The highest syscall `names` holds on each architecture of the filter.
fn arch_maxes(arches: &[(Arch, ScmpArch)], names: &[&str]) -> Vec<ArchMax> {
    let mut out: Vec<ArchMax> = Vec::new();
    for (spec, token) in arches {
        let max = names
            .iter()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, *token).ok())
            .map(|s| s.as_raw_syscall())
            .filter(|nr| *nr >= 0)
            .max()
            .map(|nr| nr as u32);
        let Some(max) = max else { continue };
        let (audit, x32) = match spec {
            Arch::ScmpArchX32 => (bpf::AUDIT_ARCH_X86_64, true),
            other => (*other as u32, false),
        };
        let entry = match out.iter_mut().position(|e| e.audit_arch == audit) {
            Some(p) => &mut out[p],
            None => {
                out.push(ArchMax {
                    audit_arch: audit,
                    max: None,
                    max_x32: None,
                });
                out.last_mut().expect("just pushed")
            }
        };
        if x32 {
            entry.max_x32 = Some(max | bpf::X32_SYSCALL_BIT);
        } else {
            entry.max = Some(max);
        }
    }
    out
}

/// libseccomp's BPF for `ctx`, through an anonymous file (libseccomp 2.5
/// exports to a descriptor only).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, SeccompError> {
    // SAFETY: memfd_create with a valid C string; returns a new descriptor.
    let fd = unsafe { libc::memfd_create(c"pea-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(library(format!(
            "memfd_create: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a new descriptor we own.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(&file).map_err(library)?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(library)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::bpf::run;

    const AUDIT_X86_64: u32 = 0xc000_003e;
    const ALLOW: u32 = 0x7fff_0000;
    const ERRNO: u32 = 0x0005_0000;

    fn parse(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("valid seccomp object")
    }

    fn nr(name: &str) -> u32 {
        ScmpSyscall::from_name(name).unwrap().as_raw_syscall() as u32
    }

    fn err_of(v: serde_json::Value) -> String {
        compile(&parse(v)).unwrap_err().to_string()
    }

    #[test]
    fn errno_rule_and_default_allow() {
        let p = compile(&parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        })))
        .unwrap();
        assert_eq!(p.flags(), 0);
        let prog = p.instructions();
        if cfg!(target_arch = "x86_64") {
            assert_eq!(run(prog, AUDIT_X86_64, nr("mkdir"), [0; 6]), ERRNO | 13);
            assert_eq!(run(prog, AUDIT_X86_64, nr("mkdirat"), [0; 6]), ERRNO | 13);
            assert_eq!(run(prog, AUDIT_X86_64, nr("read"), [0; 6]), ALLOW);
            // No ENOSYS stub with a permissive default.
            assert_eq!(run(prog, AUDIT_X86_64, 1000, [0; 6]), ALLOW);
        }
    }

    #[test]
    fn argument_conditions() {
        let p = compile(&parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 0x20008, "op": "SCMP_CMP_EQ"}]},
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 0xff, "valueTwo": 40, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["dup3"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 2, "value": 5, "op": "SCMP_CMP_GT"},
                          {"index": 0, "value": 3, "op": "SCMP_CMP_LE"}]}
            ]
        })))
        .unwrap();
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let prog = p.instructions();
        let a = AUDIT_X86_64;
        assert_eq!(run(prog, a, nr("kill"), [1, 10, 0, 0, 0, 0]), ERRNO | 1);
        assert_eq!(run(prog, a, nr("kill"), [1, 12, 0, 0, 0, 0]), ALLOW);
        // Two conditions on one argument: either matches.
        assert_eq!(
            run(prog, a, nr("personality"), [8, 0, 0, 0, 0, 0]),
            ERRNO | 22
        );
        assert_eq!(
            run(prog, a, nr("personality"), [0x20008, 0, 0, 0, 0, 0]),
            ERRNO | 22
        );
        assert_eq!(run(prog, a, nr("personality"), [0, 0, 0, 0, 0, 0]), ALLOW);
        // MASKED_EQ: (arg & value) == valueTwo.
        assert_eq!(
            run(prog, a, nr("socket"), [0x128, 1, 0, 0, 0, 0]),
            ERRNO | 1
        );
        assert_eq!(run(prog, a, nr("socket"), [2, 1, 0, 0, 0, 0]), ALLOW);
        // Conditions on different arguments: all must hold.
        assert_eq!(run(prog, a, nr("dup3"), [3, 0, 6, 0, 0, 0]), ERRNO | 1);
        assert_eq!(run(prog, a, nr("dup3"), [4, 0, 6, 0, 0, 0]), ALLOW);
        assert_eq!(run(prog, a, nr("dup3"), [3, 0, 5, 0, 0, 0]), ALLOW);
    }

    #[test]
    fn deny_by_default_gets_enosys_for_newer_syscalls() {
        let p = compile(&parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["read", "write", "openat", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"}]
        })))
        .unwrap();
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let prog = p.instructions();
        let a = AUDIT_X86_64;
        assert_eq!(run(prog, a, nr("read"), [0; 6]), ALLOW);
        assert_eq!(run(prog, a, nr("close"), [0; 6]), ERRNO | 1);
        // openat is the highest named: anything above it is "not implemented".
        assert_eq!(run(prog, a, nr("openat") + 1, [0; 6]), ERRNO | 38);
        assert_eq!(run(prog, a, 1000, [0; 6]), ERRNO | 38);
    }

    #[test]
    fn kill_and_notify_actions() {
        let p = compile(&parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "meta",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["rmdir"], "action": "SCMP_ACT_KILL"},
                {"names": ["unlink"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["link"], "action": "SCMP_ACT_TRAP"},
                {"names": ["chmod"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
                {"names": ["chown"], "action": "SCMP_ACT_LOG"}
            ]
        })))
        .unwrap();
        assert!(p.uses_notify());
        assert_eq!(
            p.flags(),
            flag::NEW_LISTENER
                | flag::LOG
                | flag::WAIT_KILLABLE_RECV
                | flag::TSYNC
                | flag::TSYNC_ESRCH
        );
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let prog = p.instructions();
        let a = AUDIT_X86_64;
        assert_eq!(run(prog, a, nr("mkdir"), [0; 6]), 0x7fc0_0000);
        assert_eq!(run(prog, a, nr("rmdir"), [0; 6]), 0);
        assert_eq!(run(prog, a, nr("unlink"), [0; 6]), 0x8000_0000);
        assert_eq!(run(prog, a, nr("link"), [0; 6]), 0x0003_0000);
        assert_eq!(run(prog, a, nr("chmod"), [0; 6]), 0x7ff0_0007);
        assert_eq!(run(prog, a, nr("chown"), [0; 6]), 0x7ffc_0000);
    }

    #[test]
    fn wait_killable_without_listener_is_dropped() {
        let p = compile(&parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
        })))
        .unwrap();
        assert_eq!(p.flags(), flag::SPEC_ALLOW);
        assert!(!p.uses_notify());
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        compile(&parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["pea_no_such_syscall"], "action": "SCMP_ACT_ERRNO"}]
        })))
        .unwrap();
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = err_of(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 5}]
        }));
        assert!(e.starts_with("linux.seccomp.syscalls[0].errnoRet"), "{e}");
        let e = err_of(serde_json::json!({
            "defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 5
        }));
        assert!(e.starts_with("linux.seccomp.defaultErrnoRet"), "{e}");
        let e = err_of(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        }));
        assert!(
            e.starts_with("linux.seccomp.syscalls[0].args[0].index"),
            "{e}"
        );
        let e = err_of(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]
        }));
        assert!(e.starts_with("linux.seccomp.syscalls[0].names"), "{e}");
        let e = err_of(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(e.starts_with("linux.seccomp.listenerPath"), "{e}");
        let e = err_of(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
            "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(e.starts_with("linux.seccomp.syscalls[0].names"), "{e}");
        let e =
            err_of(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}));
        assert!(e.starts_with("linux.seccomp.defaultAction"), "{e}");
        let e =
            err_of(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}));
        assert!(e.starts_with("linux.seccomp.listenerMetadata"), "{e}");
        let e = err_of(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000
        }));
        assert!(e.starts_with("linux.seccomp.defaultErrnoRet"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn unknown_constants_fail_to_parse_and_check_names_says_which() {
        use crate::seccomp::check_names;
        let cases = [
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_FOO"}),
                "linux.seccomp.defaultAction",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_BAR"}]}),
                "linux.seccomp.syscalls[0].action",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                                  "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}),
                "linux.seccomp.syscalls[0].args[0].op",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}),
                "linux.seccomp.architectures[0]",
            ),
            (
                serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}),
                "linux.seccomp.flags[0]",
            ),
        ];
        for (v, field) in cases {
            assert!(
                serde_json::from_value::<LinuxSeccomp>(v.clone()).is_err(),
                "{v}"
            );
            let e = check_names(&v).unwrap_err();
            assert!(e.starts_with(field), "{e}");
            assert_eq!(e.lines().count(), 1);
        }
    }

    #[test]
    fn unsupported_architecture_is_an_error() {
        // LoongArch needs libseccomp 2.6; with 2.5 the field is named.
        let r = compile(&parse(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_LOONGARCH64"]
        })));
        if let Err(e) = r {
            assert!(
                e.to_string().starts_with("linux.seccomp.architectures[0]"),
                "{e}"
            );
        }
    }
}
