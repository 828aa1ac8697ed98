//! pea's default seccomp profile: an allow-list in the spirit of Docker's
//! default (deny with EPERM; allow what ordinary programs use; open the
//! privileged families only with the capability that makes them useful),
//! written from the syscall man pages. It is a second wall: most of what it
//! blocks also needs a capability the default container lacks, but the
//! syscall code itself is attack surface, some of it is reachable without
//! any capability (user namespaces, keyrings, io_uring, userfaultfd, bpf),
//! and some of it is not namespaced at all (time, keys, swap, modules).
//!
//! Decisions that differ from Docker's profile, and why:
//! * `ptrace`, `process_vm_readv`/`_writev`: Docker allows them on kernels
//!   from 4.8 (where ptrace can no longer bypass seccomp). pea allows them
//!   only with CAP_SYS_PTRACE: reading and writing the memory of the other
//!   processes of the container is rarely what a service needs, and a
//!   debugging container gets it back by adding the capability.
//! * `userfaultfd`: only with CAP_SYS_PTRACE (the kernel's own rule when
//!   vm.unprivileged_userfaultfd is 0); it is a staple of kernel exploits.
//! * io_uring: blocked (as Docker since 25.0): a large, fast-moving kernel
//!   surface that bypasses the per-syscall view seccomp has.
//! * `name_to_handle_at` goes with `open_by_handle_at` (CAP_DAC_READ_SEARCH).
//!
//! Syscalls this libseccomp does not know are skipped when compiling, and
//! ones newer than the newest named get ENOSYS (see `bpf`), so naming new
//! syscalls here is harmless on older systems.

use oci_spec::runtime::LinuxSeccomp;
use serde_json::{Value, json};

/// Blocked for every container, whatever its capabilities, and why (the
/// default action blocks them; the list documents them and drives tests).
pub const BLOCKED: &[(&str, &str)] = &[
    ("add_key", "the kernel keyring is not namespaced"),
    ("keyctl", "the kernel keyring is not namespaced"),
    ("request_key", "the kernel keyring is not namespaced"),
    ("kexec_load", "loads a new kernel"),
    ("kexec_file_load", "loads a new kernel"),
    ("swapon", "swap is host-wide"),
    ("swapoff", "swap is host-wide"),
    (
        "io_uring_setup",
        "io_uring: large attack surface, bypasses seccomp's per-syscall view",
    ),
    (
        "io_uring_enter",
        "io_uring: large attack surface, bypasses seccomp's per-syscall view",
    ),
    (
        "io_uring_register",
        "io_uring: large attack surface, bypasses seccomp's per-syscall view",
    ),
    ("vm86", "x86 virtual 8086 mode: old, exploited, not needed"),
    (
        "vm86old",
        "x86 virtual 8086 mode: old, exploited, not needed",
    ),
    ("uselib", "obsolete a.out shared libraries"),
    ("ustat", "obsolete"),
    ("sysfs", "obsolete"),
    ("_sysctl", "obsolete; use /proc/sys"),
    ("nfsservctl", "removed from the kernel"),
    ("create_module", "removed from the kernel"),
    ("get_kernel_syms", "removed from the kernel"),
    ("query_module", "removed from the kernel"),
    ("afs_syscall", "never implemented"),
    ("tuxcall", "never implemented"),
    ("security", "never implemented"),
    ("putpmsg", "never implemented"),
    ("getpmsg", "never implemented"),
    ("vserver", "never implemented"),
];

/// When a group of rules is part of the profile.
#[derive(Clone, Copy)]
enum When {
    Always,
    /// The bounding set holds one of these.
    AnyCap(&'static [&'static str]),
    /// The bounding set lacks this one.
    NotCap(&'static str),
}

/// One argument condition: (index, value, valueTwo, op).
type Arg = (u32, u64, u64, &'static str);

struct Group {
    names: &'static [&'static str],
    /// None: allow; Some(e): fail with errno e.
    errno: Option<u32>,
    args: &'static [Arg],
    when: When,
}

const fn allow(names: &'static [&'static str], when: When) -> Group {
    Group {
        names,
        errno: None,
        args: &[],
        when,
    }
}

/// What ordinary programs use: files, descriptors, memory, processes,
/// signals, time, scheduling, SysV/POSIX IPC, sockets, credentials.
#[rustfmt::skip]
const ALWAYS: &[&str] = &[
    // files and directories
    "access", "faccessat", "faccessat2", "chdir", "fchdir", "chmod", "fchmod", "fchmodat",
    "fchmodat2", "chown", "fchown", "fchownat", "lchown", "creat", "open", "openat", "openat2",
    "close", "close_range", "mkdir", "mkdirat", "mknod", "mknodat", "rename", "renameat",
    "renameat2", "rmdir", "link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
    "readlink", "readlinkat", "stat", "lstat", "fstat", "newfstatat", "statx", "statfs", "fstatfs",
    "truncate", "ftruncate", "fallocate", "getcwd", "getdents", "getdents64", "umask", "utime",
    "utimes", "utimensat", "futimesat", "getxattr", "lgetxattr", "fgetxattr", "setxattr",
    "lsetxattr", "fsetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr",
    "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1", "inotify_add_watch",
    "inotify_rm_watch", "fanotify_mark", "flock", "sync", "syncfs", "fsync", "fdatasync",
    "sync_file_range", "fadvise64", "readahead", "copy_file_range", "sendfile", "splice", "tee",
    "vmsplice", "cachestat",
    // descriptors and I/O
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "lseek", "dup", "dup2", "dup3", "fcntl", "ioctl", "pipe", "pipe2", "select",
    "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2", "epoll_ctl_old", "epoll_wait_old", "eventfd", "eventfd2",
    "signalfd", "signalfd4", "timerfd_create", "timerfd_settime", "timerfd_gettime", "memfd_create",
    "memfd_secret", "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
    "io_pgetevents",
    // memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock", "mlock2",
    "munlock", "mlockall", "munlockall", "remap_file_pages", "membarrier", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "map_shadow_stack", "mseal", "process_mrelease",
    // processes and threads (clone, clone3, personality: see the groups below)
    "execve", "execveat", "fork", "vfork", "exit", "exit_group", "wait4", "waitid", "kill",
    "tgkill", "tkill", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid",
    "setsid", "set_tid_address", "set_robust_list", "get_robust_list", "futex", "futex_waitv",
    "futex_wake", "futex_wait", "futex_requeue", "rseq", "prctl", "seccomp", "capget", "capset",
    "getrusage", "getrlimit", "setrlimit", "prlimit64", "getpriority", "setpriority", "ioprio_get",
    "ioprio_set", "pidfd_open", "pidfd_send_signal", "restart_syscall", "set_thread_area",
    "get_thread_area", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    // signals
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "pause", "alarm",
    "sigreturn", "sigprocmask", "sigsuspend", "sigpending",
    // time (reading it; setting it needs CAP_SYS_TIME, below)
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "times", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
    "timer_getoverrun", "timer_delete", "adjtimex", "clock_adjtime",
    // scheduling
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_getattr", "sched_setattr", "getcpu",
    // SysV and POSIX IPC (namespaced by the ipc namespace)
    "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop", "semctl", "shmget",
    "shmat", "shmdt", "shmctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive",
    "mq_notify", "mq_getsetattr", "ipc",
    // sockets (socket itself: see below)
    "socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "shutdown", "setsockopt",
    "getsockopt", "socketcall", "send", "recv",
    // credentials (the kernel checks CAP_SETUID/CAP_SETGID)
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid",
    "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
    // system information
    "uname", "sysinfo", "getrandom",
    // 32-bit variants, for the compat architectures in the filter
    "_llseek", "_newselect", "chown32", "fchown32", "lchown32", "fcntl64", "fstat64", "fstatat64",
    "lstat64", "stat64", "statfs64", "fstatfs64", "ftruncate64", "truncate64", "getegid32",
    "geteuid32", "getgid32", "getuid32", "getgroups32", "getresgid32", "getresuid32", "setfsgid32",
    "setfsuid32", "setgid32", "setgroups32", "setregid32", "setresgid32", "setresuid32",
    "setreuid32", "setuid32", "mmap2", "sendfile64", "fadvise64_64", "ugetrlimit", "waitpid",
    "clock_gettime64", "clock_getres_time64", "clock_nanosleep_time64", "clock_adjtime64",
    "futex_time64", "io_pgetevents_time64", "mq_timedreceive_time64", "mq_timedsend_time64",
    "ppoll_time64", "pselect6_time64", "recvmmsg_time64", "rt_sigtimedwait_time64",
    "sched_rr_get_interval_time64", "semtimedop_time64", "timer_gettime64", "timer_settime64",
    "timerfd_gettime64", "timerfd_settime64", "utimensat_time64",
    // architecture-specific, each harmless where it exists
    "arch_prctl", "modify_ldt", "breakpoint", "cacheflush", "set_tls", "arm_fadvise64_64",
    "arm_sync_file_range", "sync_file_range2", "riscv_flush_icache", "s390_pci_mmio_read",
    "s390_pci_mmio_write", "s390_runtime_instr",
];

/// CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
/// CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET: the namespace flags of clone(2).
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;
/// The clone flags argument (s390 swaps the first two arguments).
const CLONE_FLAGS_ARG: u32 = if cfg!(target_arch = "s390x") { 1 } else { 0 };
/// AF_VSOCK: host/guest sockets, reaching the hypervisor side.
const AF_VSOCK: u64 = 40;

const GROUPS: &[Group] = &[
    allow(ALWAYS, When::Always),
    // socket(2) for every family but vsock.
    Group {
        names: &["socket"],
        errno: None,
        args: &[(0, AF_VSOCK, 0, "SCMP_CMP_NE")],
        when: When::Always,
    },
    // personality(2): only the execution domains a program legitimately
    // asks for (PER_LINUX, PER_LINUX32, UNAME26, both, and the query);
    // ADDR_NO_RANDOMIZE and friends stay blocked.
    Group {
        names: &["personality"],
        errno: None,
        args: &[(0, 0x0, 0, "SCMP_CMP_EQ")],
        when: When::Always,
    },
    Group {
        names: &["personality"],
        errno: None,
        args: &[(0, 0x8, 0, "SCMP_CMP_EQ")],
        when: When::Always,
    },
    Group {
        names: &["personality"],
        errno: None,
        args: &[(0, 0x20000, 0, "SCMP_CMP_EQ")],
        when: When::Always,
    },
    Group {
        names: &["personality"],
        errno: None,
        args: &[(0, 0x20008, 0, "SCMP_CMP_EQ")],
        when: When::Always,
    },
    Group {
        names: &["personality"],
        errno: None,
        args: &[(0, 0xffff_ffff, 0, "SCMP_CMP_EQ")],
        when: When::Always,
    },
    // Without CAP_SYS_ADMIN: threads and processes, but no new namespaces
    // (unprivileged user namespaces open much of the kernel to root-only
    // code paths); clone3 passes its flags in memory seccomp cannot read, so
    // it says ENOSYS and libc falls back to clone.
    Group {
        names: &["clone"],
        errno: None,
        args: &[(
            CLONE_FLAGS_ARG,
            CLONE_NAMESPACE_FLAGS,
            0,
            "SCMP_CMP_MASKED_EQ",
        )],
        when: When::NotCap("CAP_SYS_ADMIN"),
    },
    Group {
        names: &["clone3"],
        errno: Some(libc::ENOSYS as u32),
        args: &[],
        when: When::NotCap("CAP_SYS_ADMIN"),
    },
    // Mounts, namespaces, handles on the host's filesystems, quotas, host
    // name: what CAP_SYS_ADMIN is for.
    allow(
        &[
            "clone",
            "clone3",
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
            "fanotify_init",
            "lookup_dcookie",
            "quotactl",
            "quotactl_fd",
            "sethostname",
            "setdomainname",
        ],
        When::AnyCap(&["CAP_SYS_ADMIN"]),
    ),
    allow(&["bpf"], When::AnyCap(&["CAP_SYS_ADMIN", "CAP_BPF"])),
    allow(
        &["perf_event_open"],
        When::AnyCap(&["CAP_SYS_ADMIN", "CAP_PERFMON"]),
    ),
    allow(&["syslog"], When::AnyCap(&["CAP_SYS_ADMIN", "CAP_SYSLOG"])),
    // File handles reach any file of the filesystem, past the container's root.
    allow(
        &["open_by_handle_at", "name_to_handle_at"],
        When::AnyCap(&["CAP_DAC_READ_SEARCH"]),
    ),
    allow(&["reboot"], When::AnyCap(&["CAP_SYS_BOOT"])),
    allow(&["chroot"], When::AnyCap(&["CAP_SYS_CHROOT"])),
    allow(
        &["init_module", "finit_module", "delete_module"],
        When::AnyCap(&["CAP_SYS_MODULE"]),
    ),
    allow(&["acct"], When::AnyCap(&["CAP_SYS_PACCT"])),
    allow(
        &[
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "userfaultfd",
        ],
        When::AnyCap(&["CAP_SYS_PTRACE"]),
    ),
    allow(&["iopl", "ioperm"], When::AnyCap(&["CAP_SYS_RAWIO"])),
    // The clock is the host's (time namespaces only offset monotonic/boot).
    allow(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        When::AnyCap(&["CAP_SYS_TIME"]),
    ),
    allow(&["vhangup"], When::AnyCap(&["CAP_SYS_TTY_CONFIG"])),
    // NUMA placement affects the whole host's memory.
    allow(
        &[
            "get_mempolicy",
            "set_mempolicy",
            "set_mempolicy_home_node",
            "mbind",
            "move_pages",
            "migrate_pages",
        ],
        When::AnyCap(&["CAP_SYS_NICE"]),
    ),
];

/// The architectures a filter for this machine covers: the native one and
/// the compat ones its kernel can run.
fn architectures() -> Vec<&'static str> {
    if cfg!(target_arch = "x86_64") {
        vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else if cfg!(target_arch = "s390x") {
        vec!["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
    } else if cfg!(target_arch = "riscv64") {
        vec!["SCMP_ARCH_RISCV64"]
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        vec!["SCMP_ARCH_PPC64LE"]
    } else {
        Vec::new()
    }
}

/// The default profile for a process whose bounding capability set is
/// `caps` (names like "CAP_SYS_ADMIN"): deny with EPERM, allow the list
/// above, open a privileged family only when its capability is there.
pub fn default_profile<S: AsRef<str>>(caps: &[S]) -> LinuxSeccomp {
    let has = |c: &str| {
        caps.iter()
            .any(|x| x.as_ref() == c || x.as_ref().strip_prefix("CAP_") == Some(c))
    };
    let mut syscalls: Vec<Value> = Vec::new();
    for g in GROUPS {
        let on = match g.when {
            When::Always => true,
            When::AnyCap(list) => list.iter().any(|c| has(c)),
            When::NotCap(c) => !has(c),
        };
        if !on {
            continue;
        }
        let mut rule = json!({
            "names": g.names,
            "action": if g.errno.is_some() { "SCMP_ACT_ERRNO" } else { "SCMP_ACT_ALLOW" },
        });
        if let Some(e) = g.errno {
            rule["errnoRet"] = json!(e);
        }
        if !g.args.is_empty() {
            rule["args"] = g
                .args
                .iter()
                .map(|(index, value, value_two, op)| {
                    json!({"index": index, "value": value, "valueTwo": value_two, "op": op})
                })
                .collect();
        }
        syscalls.push(rule);
    }
    let profile = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EPERM,
        "architectures": architectures(),
        "syscalls": syscalls,
    });
    serde_json::from_value(profile).expect("the default profile is a valid seccomp object")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::bpf::run;
    use crate::seccomp::compile;
    use oci_spec::runtime::LinuxSeccompAction;

    const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = 0x0005_0001;
    const ENOSYS: u32 = 0x0005_0026;
    const X86_64: u32 = 0xc000_003e;

    fn allowed_names(p: &LinuxSeccomp) -> Vec<String> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    fn nr(name: &str) -> u32 {
        libseccomp::ScmpSyscall::from_name(name)
            .unwrap()
            .as_raw_syscall() as u32
    }

    #[test]
    fn must_block_list_is_not_allowed_without_capabilities() {
        let p = default_profile(&DEFAULT_CAPS);
        let allowed = allowed_names(&p);
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "ptrace",
            "kexec_load",
            "init_module",
            "finit_module",
            "delete_module",
            "bpf",
            "perf_event_open",
            "swapon",
            "swapoff",
            "reboot",
            "pivot_root",
            "open_by_handle_at",
            "userfaultfd",
            "clock_settime",
            "settimeofday",
            "acct",
            "quotactl",
            "lookup_dcookie",
            "iopl",
            "ioperm",
            "vm86",
            "clone3",
            "io_uring_setup",
        ] {
            assert!(!allowed.iter().any(|a| a == name), "{name} is allowed");
        }
        for (name, _) in BLOCKED {
            assert!(!allowed.iter().any(|a| a == name), "{name} is allowed");
            // Not allowed with every capability either.
            let all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
            assert!(
                !allowed_names(&default_profile(&all))
                    .iter()
                    .any(|a| a == name),
                "{name} is allowed with all capabilities"
            );
        }
    }

    #[test]
    fn no_name_twice_in_a_profile() {
        let all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        for caps in [all, DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()] {
            let p = default_profile(&caps);
            let mut unconditional = allowed_names(&p);
            let n = unconditional.len();
            unconditional.sort();
            unconditional.dedup();
            assert_eq!(n, unconditional.len(), "a syscall is listed twice");
            // Conditional rules never name an unconditionally allowed syscall.
            for s in p.syscalls().iter().flatten().filter(|s| s.args().is_some()) {
                for name in s.names() {
                    assert!(!unconditional.contains(name), "{name}");
                }
            }
        }
    }

    #[test]
    fn compiles_and_behaves() {
        let p = compile(&default_profile(&DEFAULT_CAPS)).unwrap();
        assert!(!p.uses_notify());
        if !cfg!(target_arch = "x86_64") {
            return;
        }
        let prog = p.instructions();
        let sys = |name: &str, args: [u64; 6]| run(prog, X86_64, nr(name), args);
        assert_eq!(sys("read", [0; 6]), ALLOW);
        assert_eq!(sys("mount", [0; 6]), EPERM);
        assert_eq!(sys("unshare", [0x4000_0000, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(sys("keyctl", [0; 6]), EPERM);
        assert_eq!(sys("ptrace", [0; 6]), EPERM);
        // clone: threads yes, namespaces no.
        assert_eq!(sys("clone", [0x003d_0f00, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(sys("clone", [0x1000_0011, 0, 0, 0, 0, 0]), EPERM);
        assert_eq!(sys("clone3", [0; 6]), ENOSYS);
        // personality: the query and PER_LINUX32 yes, ADDR_NO_RANDOMIZE no.
        assert_eq!(sys("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(sys("personality", [8, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(sys("personality", [0x0040_0000, 0, 0, 0, 0, 0]), EPERM);
        // socket: not vsock.
        assert_eq!(sys("socket", [2, 1, 0, 0, 0, 0]), ALLOW);
        assert_eq!(sys("socket", [40, 1, 0, 0, 0, 0]), EPERM);
        // Newer than anything named: "not implemented", so libc falls back.
        assert_eq!(run(prog, X86_64, 1000, [0; 6]), ENOSYS);
        // i386 programs are filtered too.
        assert_eq!(run(prog, 0x4000_0003, 21 /* i386 mount */, [0; 6]), EPERM);
    }

    #[test]
    fn capabilities_open_their_families() {
        let p = default_profile(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
        let allowed = allowed_names(&p);
        for name in [
            "mount", "unshare", "setns", "clone", "clone3", "bpf", "ptrace",
        ] {
            assert!(allowed.iter().any(|a| a == name), "{name}");
        }
        assert!(!allowed.iter().any(|a| a == "keyctl"));
        assert!(!allowed.iter().any(|a| a == "reboot"));
        let prog = compile(&p).unwrap();
        if cfg!(target_arch = "x86_64") {
            let clone_ns = [0x1000_0011, 0, 0, 0, 0, 0];
            assert_eq!(
                run(prog.instructions(), X86_64, nr("clone"), clone_ns),
                ALLOW
            );
        }
    }
}
