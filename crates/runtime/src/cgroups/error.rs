//! The one error type of the cgroups module. Every message names the file or
//! config field involved and, where there is one, what the user can do.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while managing a container's cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading a cgroup (or /proc) file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing a value into a cgroup file failed.
    #[error("cannot write {value:?} to {path}: {source}{hint}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
        /// Extra advice derived from the errno (may be empty).
        hint: &'static str,
    },

    /// A cgroup or /proc file did not have the expected format.
    #[error("cannot parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },

    /// mkdir of a cgroup directory failed.
    #[error("cannot create cgroup directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// rmdir of a cgroup directory failed.
    #[error("cannot remove cgroup directory {path}: {source}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing a pid into cgroup.procs failed.
    #[error("cannot move pid {pid} into {path}: {source}")]
    AddProcess {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Sending SIGKILL to a leftover process failed.
    #[error("cannot kill pid {pid} found in {path}: {source}")]
    Kill {
        pid: i32,
        path: PathBuf,
        #[source]
        source: nix::errno::Errno,
    },

    /// Neither cgroup v1 hierarchies nor a cgroup2 mount were found.
    #[error(
        "no usable cgroup filesystem: {detail}; mount cgroup2 on /sys/fs/cgroup \
         (or cgroup v1 hierarchies below it)"
    )]
    NoCgroupFs { detail: String },

    /// linux.cgroupsPath (or the persisted path) is not acceptable.
    #[error("invalid linux.cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// A relative cgroupsPath cannot be resolved to one place on v1/hybrid.
    #[error(
        "relative linux.cgroupsPath {path:?} is ambiguous: the runtime's own cgroup \
         differs between hierarchies ({detail}); use an absolute cgroupsPath such as \"/pea/<id>\""
    )]
    AmbiguousRelativePath { path: String, detail: String },

    /// The systemd driver was asked for but systemd does not run this host.
    #[error(
        "the systemd cgroup driver was requested ({reason}) but systemd is not PID 1 here \
         (needs /run/systemd/system and /proc/1/comm = \"systemd\"); run without the \
         systemd cgroup option and give a plain cgroupsPath such as \"/pea/<id>\""
    )]
    SystemdUnavailable { reason: String },

    /// systemd runs, but this runtime cannot create transient units.
    #[error(
        "the systemd cgroup driver is not implemented (systemd is running, but pea cannot \
         create transient units over D-Bus); run without the systemd cgroup option and give \
         a plain cgroupsPath such as \"/pea/<id>\""
    )]
    SystemdNotImplemented,

    /// A resource field is set but this host cannot honour it.
    #[error(
        "linux.resources.{field} cannot be honoured: {reason}; remove the field from the \
         config or use a host whose {controller} cgroup controller provides it"
    )]
    Unsupported {
        field: String,
        controller: String,
        reason: String,
    },

    /// An operation (freeze, OOM count) needs something this host lacks.
    #[error("cannot {operation}: {reason}")]
    Unavailable {
        operation: &'static str,
        reason: String,
    },

    /// A resource field has a value the runtime or kernel refuses.
    #[error("invalid linux.resources.{field} = {value}: {reason}")]
    InvalidValue {
        field: String,
        value: String,
        reason: String,
    },

    /// A bounded wait (freeze, emptying, removal) ran out.
    #[error("timed out after {waited:?} waiting for {path} to {what}")]
    Timeout {
        path: PathBuf,
        what: String,
        waited: Duration,
    },

    /// A bpf(2) operation for the cgroup v2 device filter failed.
    #[error("bpf {op} for the device filter of {path} failed: {source}{log}")]
    Bpf {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
        /// Verifier log, prefixed with a newline, or empty.
        log: String,
    },
}

/// Shorthand used throughout the module.
pub type Result<T> = std::result::Result<T, CgroupError>;
