//! pea's command line: runc's verbs and flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "pea",
    version,
    about = "peapod's OCI runtime: runs containers from OCI bundles, like runc",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Directory for container state (tmpfs recommended). Default: /run/pea
    /// for root, $XDG_RUNTIME_DIR/pea (else /run/user/UID/pea) for other users.
    #[arg(long, global = true, default_value_os_t = default_root())]
    pub root: PathBuf,
    /// Write log messages to this file instead of stderr.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of log messages.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Manage cgroups through systemd.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The state root when --root is not given: as runc, a user other than root
/// keeps state in its runtime directory.
fn default_root() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/pea");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("pea"),
        _ => PathBuf::from(format!("/run/user/{uid}/pea")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (init waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal to a container's init (default TERM).
    Kill {
        /// Signal every process in the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a stopped container (or a running one with --force).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Create and start a container, and wait for it unless --detach.
    Run(RunArgs),
    /// Run a new process inside a running container.
    Exec(ExecArgs),
    /// List containers.
    List {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the processes of a container.
    Ps {
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        id: String,
    },
    /// Write a default config.json into the bundle.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for an unprivileged user.
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports (runtime-spec features.md).
    Features,
    /// Change the resource limits of a container.
    Update(crate::cgroup_cmds::UpdateArgs),
    /// Suspend every process of a container (cgroup freezer).
    Pause { id: String },
    /// Resume a paused container.
    Resume { id: String },
    /// Print container events (statistics, OOM kills) as JSON lines.
    Events(crate::cgroup_cmds::EventsArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Do not use pivot_root (for a rootfs on ramfs).
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not give the container its own session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N extra descriptors (3..3+N) to the container process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return after start instead of waiting for the container.
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits (runc's --keep).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(short, long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// UID[:GID]
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group ids.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// A process.json to run instead of ARGS.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Add a capability to the process's sets.
    #[arg(short, long = "cap")]
    pub caps: Vec<String>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}
