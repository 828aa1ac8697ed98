//! `linux.seccomp`: the whole runtime-spec seccomp object compiled to a
//! classic-BPF program in the parent, loaded by the container process.
//!
//! * [`compile`] validates the object (one error line naming the field for a
//!   bad action, operator, architecture, flag, errnoRet or argument index;
//!   syscall names this libseccomp does not know are skipped, as runc does)
//!   and turns it into a [`Program`] with libseccomp. Like runc it prepends a
//!   stub that answers ENOSYS for syscalls newer than any the profile names,
//!   so a libc probing for a new syscall falls back instead of seeing EPERM.
//! * [`Program::load`] is what the forked child calls: one `seccomp(2)`
//!   with the spec's flags, no allocation, no libseccomp. It runs before the
//!   capability drop and user switch when `noNewPrivileges` is off (a filter
//!   then needs CAP_SYS_ADMIN), else as late as possible before exec.
//! * With `SCMP_ACT_NOTIFY` the kernel hands back a listener descriptor; the
//!   child passes it to the runtime, which sends it with the container
//!   process state to `listenerPath` ([`Listener`], connected before fork).
//! * [`default_profile`] is pea's Docker-equivalent default, used by `pea spec`.
//!
//! After the filter is loaded the container process still makes a few
//! syscalls of the runtime's own before exec, so a profile must allow them:
//! sendmsg (always; it may not be `SCMP_ACT_NOTIFY`), recvmsg (with a
//! listener), accept, read, write, fcntl, prctl, close_range, execve, and,
//! with `noNewPrivileges` off, capset, setgroups, setresuid, setresgid.

mod bpf;
mod cache;
mod compile;
mod default_profile;
mod notify;

pub use bpf::Insn;
pub use compile::{Program, compile};
pub use default_profile::{BLOCKED, default_profile};
pub use notify::Listener;

/// Every way seccomp setup can fail; each message is one line.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// A field of `linux.seccomp` the runtime cannot honour.
    #[error("linux.seccomp.{field} {what}")]
    Invalid { field: String, what: String },
    #[error("linux.seccomp: libseccomp: {0}")]
    Library(String),
    #[error("linux.seccomp: loading the filter: {0}")]
    Load(String),
    #[error("linux.seccomp.listenerPath {path}: {what}")]
    Listener { path: String, what: String },
}

fn invalid(field: impl Into<String>, what: impl Into<String>) -> SeccompError {
    SeccompError::Invalid {
        field: field.into(),
        what: what.into(),
    }
}

/// `syscalls[].action` and `defaultAction` values.
pub const ACTIONS: [&str; 9] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// `syscalls[].args[].op` values.
pub const OPERATORS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// `flags` values this runtime knows; they go to seccomp(2) as they are.
pub const FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// `architectures` values the runtime-spec schema lists; [`supported_archs`]
/// says which of them the linked libseccomp can build filters for.
const ARCH_NAMES: [&str; 24] = [
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

/// The architectures a filter made on this machine may name, sorted: known
/// to the spec and to the linked libseccomp, and of this machine's byte
/// order (libseccomp keeps one per filter).
pub fn supported_archs() -> Vec<&'static str> {
    ARCH_NAMES
        .iter()
        .copied()
        .filter(|name| {
            let Ok(arch) = name.parse::<libseccomp::ScmpArch>() else {
                return false;
            };
            libseccomp::ScmpFilterContext::new(libseccomp::ScmpAction::Allow)
                .and_then(|mut ctx| ctx.add_arch(arch).map(drop))
                .is_ok()
        })
        .collect()
}

/// Kernel values of the filter flags (linux/seccomp.h).
pub(crate) mod flag {
    pub const TSYNC: u32 = 1 << 0;
    pub const LOG: u32 = 1 << 1;
    pub const SPEC_ALLOW: u32 = 1 << 2;
    pub const NEW_LISTENER: u32 = 1 << 3;
    pub const TSYNC_ESRCH: u32 = 1 << 4;
    pub const WAIT_KILLABLE_RECV: u32 = 1 << 5;
}

fn flag_value(name: &str) -> Option<u32> {
    Some(match name {
        "SECCOMP_FILTER_FLAG_TSYNC" => flag::TSYNC,
        "SECCOMP_FILTER_FLAG_LOG" => flag::LOG,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => flag::SPEC_ALLOW,
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => flag::WAIT_KILLABLE_RECV,
        _ => return None,
    })
}

/// The known flags this kernel accepts. Probed the way libseccomp does: a
/// filter load with a NULL program fails with EFAULT once the flags passed
/// the kernel's check (and EINVAL when they did not); nothing is installed.
pub fn supported_flags() -> Vec<&'static str> {
    FLAGS
        .iter()
        .copied()
        .filter(|name| {
            let mut bits = flag_value(name).unwrap_or(0);
            if bits == flag::WAIT_KILLABLE_RECV {
                // Only meaningful (and only accepted) with a listener.
                bits |= flag::NEW_LISTENER;
            }
            // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER) with a NULL program
            // reads nothing and installs nothing; it only reports an error.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    1, // SECCOMP_SET_MODE_FILTER
                    bits as libc::c_ulong,
                    std::ptr::null::<libc::c_void>(),
                )
            };
            rc < 0 && nix::errno::Errno::last() == nix::errno::Errno::EFAULT
        })
        .collect()
}

/// A closer look at a `linux.seccomp` that did not parse as a spec: names
/// the first field whose value is not one of the known constants (serde's
/// own message only gives a line and column). `seccomp` is the raw JSON.
pub fn check_names(seccomp: &serde_json::Value) -> Result<(), String> {
    fn one_of(
        v: &serde_json::Value,
        known: &[&str],
        field: &str,
        what: &str,
    ) -> Result<(), String> {
        match v.as_str() {
            Some(s) if known.contains(&s) => Ok(()),
            Some(s) => Err(format!(
                "linux.seccomp.{field} {s:?} is not a seccomp {what}; use one of {}",
                known.join(", ")
            )),
            None => Err(format!(
                "linux.seccomp.{field} must be a string naming a seccomp {what}"
            )),
        }
    }
    if seccomp.is_null() {
        return Ok(());
    }
    one_of(
        &seccomp["defaultAction"],
        &ACTIONS,
        "defaultAction",
        "action",
    )?;
    for (i, a) in seccomp["architectures"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        one_of(
            a,
            &ARCH_NAMES,
            &format!("architectures[{i}]"),
            "architecture",
        )?;
    }
    for (i, f) in seccomp["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        one_of(f, &FLAGS, &format!("flags[{i}]"), "filter flag")?;
    }
    for (i, s) in seccomp["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        one_of(
            &s["action"],
            &ACTIONS,
            &format!("syscalls[{i}].action"),
            "action",
        )?;
        for (j, a) in s["args"].as_array().into_iter().flatten().enumerate() {
            one_of(
                &a["op"],
                &OPERATORS,
                &format!("syscalls[{i}].args[{j}].op"),
                "operator",
            )?;
        }
    }
    Ok(())
}

/// What a process plan needs from `linux.seccomp`: the compiled filter and,
/// when a rule notifies, the connection to the agent at `listenerPath`
/// (made here, in the runtime, so the path is the host's). `state` is the
/// container's state for the agent (a pid of 0 is filled in on sending).
/// `cache` is where compiled filters are kept (see `cache.rs`).
pub fn prepare(
    seccomp: Option<&oci_spec::runtime::LinuxSeccomp>,
    state: &crate::state::OciState,
    cache: Option<&std::path::Path>,
) -> Result<(Option<Program>, Option<Listener>), SeccompError> {
    let Some(s) = seccomp else {
        return Ok((None, None));
    };
    let program = cache::compile_cached(s, cache)?;
    let listener = match s.listener_path() {
        Some(path) if program.uses_notify() => Some(Listener::connect(
            path,
            s.listener_metadata().clone(),
            state.clone(),
        )?),
        _ => None,
    };
    Ok((Some(program), listener))
}
