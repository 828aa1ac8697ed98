//! pea-runtime: the OCI runtime as a library.
//!
//! An OCI bundle (config.json + root filesystem) goes in, a running container
//! comes out. The engine calls these functions in-process; the `pea` binary is
//! a thin runc-compatible command line over them. Nothing here parses command
//! lines, prints, or keeps process-global state.

pub mod capabilities;
pub mod cgroups;
pub mod config;
pub mod console;
pub mod container;
pub mod exe_seal;
pub mod hooks;
pub mod lsm;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec_default;
pub mod state;
pub mod user;

pub use container::{ContainerError, ContainerInfo, CreateOptions, ExecOptions, Runtime};
pub use process::wait::{ExitStatus, become_subreaper, wait_pid};
pub use signal::SignalNumber;
pub use state::{OciState, Status};
