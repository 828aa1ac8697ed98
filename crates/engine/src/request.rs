//! What a user asks for when making a container (`peapod run/create` flags),
//! as typed values. The command line parses strings into these (each type's
//! `FromStr` takes Docker's syntax); the engine turns them into a bundle.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::restart::RestartPolicy;

/// Everything `peapod run` / `peapod create` can say about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRequest {
    /// The image as the user named it.
    pub image: String,
    pub name: Option<String>,
    /// Arguments after the image: replace the image's Cmd.
    pub command: Vec<String>,
    /// `--entrypoint`: replaces the image's Entrypoint (an empty string
    /// clears it: `Some(vec![])`).
    pub entrypoint: Option<Vec<String>>,
    /// `-e`/`--env`/`--env-file`, already resolved to `KEY=VALUE`.
    pub env: Vec<String>,
    /// `-w`: the working directory inside the container.
    pub workdir: Option<String>,
    /// `-u USER[:GROUP]`, names or numeric ids.
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// `-t`: the process gets a terminal.
    pub tty: bool,
    /// `-i`: stdin stays open.
    pub interactive: bool,
    pub volumes: Vec<VolumeSpec>,
    pub tmpfs: Vec<TmpfsSpec>,
    /// `--read-only`: the root filesystem is mounted read-only.
    pub read_only: bool,
    pub publish: Vec<PortMapping>,
    pub network: NetworkMode,
    pub ipc: IpcMode,
    pub pid: PidMode,
    pub uts: UtsMode,
    pub userns: UsernsMode,
    pub resources: Resources,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub security: SecurityOpts,
    pub ulimits: Vec<Ulimit>,
    pub restart: RestartPolicy,
    /// `--rm`: removed when it ends (and is not restarted).
    pub auto_remove: bool,
    /// `--init`: peapod's reaper runs as PID 1 and the command as its child.
    pub init: bool,
    pub labels: BTreeMap<String, String>,
    /// `--stop-signal` (a name like SIGTERM or TERM, or a number).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (default 10).
    pub stop_timeout: Option<u32>,
    /// `--cgroup-parent`: the cgroup the container's goes under (default
    /// `/peapod`).
    #[serde(default)]
    pub cgroup_parent: Option<String>,
    /// `--add-host NAME:IP` (a pod's hostAliases): lines added to the
    /// container's /etc/hosts.
    #[serde(default)]
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// `--dns`, `--dns-search`, `--dns-option` (a pod's dnsPolicy and
    /// dnsConfig): the container's /etc/resolv.conf.
    #[serde(default)]
    pub dns: Option<DnsConfig>,
    /// `--group-add` (a pod's supplementalGroups and fsGroup): more group
    /// ids for the process.
    #[serde(default)]
    pub group_add: Vec<u32>,
    /// `--sysctl KEY=VALUE` (a pod's sysctls): written to linux.sysctl.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// A user namespace with this mapping, allocated by the caller (the
    /// range of a `hostUsers: false` pod, shared by its containers);
    /// overrides `userns`.
    #[serde(default)]
    pub userns_mapping: Option<crate::userns::IdMapping>,
    /// Join this user namespace (a pod's, made with `userns_mapping`)
    /// instead of making one.
    #[serde(default)]
    pub userns_path: Option<PathBuf>,
}

/// How a request's DNS settings combine with the host's resolv.conf.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsBase {
    /// Docker's flags: each list given replaces the host's.
    #[default]
    Replace,
    /// Kubernetes' dnsConfig: added to the host's.
    Append,
    /// Kubernetes' `dnsPolicy: None`: only what is given.
    None,
}

/// Nameservers, search domains and options for /etc/resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsConfig {
    pub nameservers: Vec<IpAddr>,
    pub searches: Vec<String>,
    /// `ndots:2`, `edns0`, ...
    pub options: Vec<String>,
    #[serde(default)]
    pub base: DnsBase,
}

/// `-v SRC:DEST[:OPTS]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub source: VolumeSource,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type", content = "value")]
pub enum VolumeSource {
    /// An absolute host path (bind mount).
    Bind(PathBuf),
    /// A named volume (`peapod volume create`, or made on first use).
    Named(String),
    /// `-v /path` alone: a fresh anonymous volume.
    Anonymous,
}

/// `--tmpfs DEST[:OPTS]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsSpec {
    pub target: String,
    /// Mount options as given (`size=64m,mode=1777`).
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// `-p [IP:]HOSTPORT:CTRPORT[/udp]` (a host port of 0 or omitted: any free one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "value")]
pub enum NetworkMode {
    /// The default bridge network, or a named one (`--network NAME`).
    Bridge(Option<String>),
    /// Only a loopback device.
    None,
    Host,
    /// Another container's (name or id).
    Container(String),
    /// A namespace file (`ns:PATH`, as Podman): a pod's infra process's.
    Namespace(PathBuf),
    /// Not given: the default bridge.
    #[default]
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "value")]
pub enum IpcMode {
    #[default]
    Private,
    /// Private, and others may join it (`container:NAME`).
    Shareable,
    Host,
    Container(String),
    /// A namespace file (`ns:PATH`).
    Namespace(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "value")]
pub enum PidMode {
    #[default]
    Private,
    Host,
    Container(String),
    /// A namespace file (`ns:PATH`).
    Namespace(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UtsMode {
    #[default]
    Private,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsernsMode {
    /// No user namespace (as Docker's default).
    #[default]
    Host,
    /// A private range of host ids per container.
    Auto,
    /// A user namespace where the caller's uid/gid map to the same ids.
    KeepId,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// `--memory`, bytes.
    pub memory: Option<u64>,
    /// `--memory-swap`, bytes of memory + swap; -1 unlimited.
    pub memory_swap: Option<i64>,
    /// `--cpus`, in billionths of a CPU (1.5 CPUs = 1_500_000_000).
    pub nano_cpus: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    /// `--pids-limit`; -1 or 0 unlimited.
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityOpts {
    pub no_new_privileges: bool,
    pub seccomp: SeccompMode,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "value")]
pub enum SeccompMode {
    /// peapod's default profile (Docker's allow-list).
    #[default]
    Default,
    Unconfined,
    /// A Docker-format or OCI-format JSON profile.
    File(PathBuf),
}

/// `--ulimit NAME=SOFT[:HARD]` (`nofile=1024:2048`, `core=-1` unlimited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Docker's short name: nofile, nproc, core, memlock, stack, ...
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}
