//! `peapod run` and `peapod create` flags, as Docker spells them, and their
//! translation into the engine's typed request.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use peapod_engine::request::{
    ContainerRequest, DnsBase, DnsConfig, IpcMode, NetworkMode, PidMode, PortMapping, Resources,
    SecurityOpts, TmpfsSpec, Ulimit, UsernsMode, UtsMode, VolumeSpec,
};
use peapod_engine::request_parse::{self as parse, host_env};
use peapod_engine::restart::RestartPolicy;

#[derive(Args, Debug, Clone)]
pub struct CreateFlags {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to pass this shell's value).
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// USER[:GROUP], names or numeric ids.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Overwrite the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Bind mount or volume: HOST-DIR:CTR-DIR[:ro], NAME:CTR-DIR[:ro] or CTR-DIR.
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Mount a tmpfs: CTR-DIR[:OPTIONS].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Publish a port: [IP:]HOSTPORT:CTRPORT[/udp].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// none, host, bridge, container:NAME, or a network's name.
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Run in this pod (`peapod pod create`): its network, IPC (and PID,
    /// if shared) namespaces, hostname and cgroup.
    #[arg(long)]
    pub pod: Option<String>,
    /// private, shareable, host or container:NAME.
    #[arg(long)]
    pub ipc: Option<String>,
    /// host or container:NAME.
    #[arg(long)]
    pub pid: Option<String>,
    /// host.
    #[arg(long)]
    pub uts: Option<String>,
    /// host, auto (a private uid range) or keep-id.
    #[arg(long)]
    pub userns: Option<String>,
    /// Memory limit (512m, 1g).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap.
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// Number of CPUs (1.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Relative CPU weight.
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPUs allowed (0-1, 0,2).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (-1 unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// All capabilities, no seccomp, no masked paths.
    #[arg(long)]
    pub privileged: bool,
    /// no-new-privileges, seccomp=unconfined or seccomp=PROFILE.json.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// NAME=SOFT[:HARD], e.g. nofile=1024:2048.
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// no, on-failure[:N], always or unless-stopped.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Remove the container when it ends.
    #[arg(long)]
    pub rm: bool,
    /// Run peapod's reaper as PID 1, the command as its child.
    #[arg(long)]
    pub init: bool,
    /// KEY=VALUE metadata.
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// The signal `stop` sends (default SIGTERM or the image's).
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<u32>,
    /// The cgroup to put the container's cgroup under (default /peapod).
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Add a line to /etc/hosts (NAME:IP).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// A nameserver for /etc/resolv.conf (replaces the host's).
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// A search domain for /etc/resolv.conf.
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// A resolv.conf option (ndots:2, edns0).
    #[arg(long = "dns-option", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Another group id for the process.
    #[arg(long = "group-add", value_name = "GID")]
    pub group_add: Vec<String>,
    /// A namespaced kernel parameter (KEY=VALUE).
    #[arg(long = "sysctl", value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// The image.
    pub image: String,
    /// The command and its arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

fn each<T: std::str::FromStr>(values: &[String]) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    values
        .iter()
        .map(|v| v.parse::<T>().map_err(anyhow::Error::from))
        .collect()
}

fn opt<T: std::str::FromStr>(value: &Option<String>) -> Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value
        .as_deref()
        .map(|v| v.parse::<T>().map_err(anyhow::Error::from))
        .transpose()
}

impl CreateFlags {
    /// The engine's request for these flags.
    pub fn request(&self) -> Result<ContainerRequest> {
        let mut env = Vec::new();
        for file in &self.env_file {
            env.extend(parse::parse_env_file(file, &host_env)?);
        }
        for e in &self.env {
            env.extend(parse::resolve_env(e, &host_env)?);
        }
        let mut security = SecurityOpts::default();
        for o in &self.security_opt {
            security.apply(o)?;
        }
        let mut labels = std::collections::BTreeMap::new();
        for l in &self.label {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            labels.insert(k.to_string(), v.to_string());
        }
        let restart: RestartPolicy = self.restart.parse()?;
        if self.rm && restart != RestartPolicy::No {
            anyhow::bail!(
                "--rm and --restart {restart} conflict: a removed container cannot be restarted; drop one"
            );
        }
        Ok(ContainerRequest {
            image: self.image.clone(),
            name: self.name.clone(),
            command: self.command.clone(),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.clone()]
                }
            }),
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            tty: self.tty,
            interactive: self.interactive,
            volumes: each::<VolumeSpec>(&self.volume)?,
            tmpfs: each::<TmpfsSpec>(&self.tmpfs)?,
            read_only: self.read_only,
            publish: each::<PortMapping>(&self.publish)?,
            network: opt::<NetworkMode>(&self.network)?.unwrap_or_default(),
            ipc: opt::<IpcMode>(&self.ipc)?.unwrap_or_default(),
            pid: opt::<PidMode>(&self.pid)?.unwrap_or_default(),
            uts: opt::<UtsMode>(&self.uts)?.unwrap_or_default(),
            userns: opt::<UsernsMode>(&self.userns)?.unwrap_or_default(),
            resources: Resources {
                memory: self
                    .memory
                    .as_deref()
                    .map(|m| parse::parse_bytes("--memory", m))
                    .transpose()?,
                memory_swap: self
                    .memory_swap
                    .as_deref()
                    .map(parse::parse_memory_swap)
                    .transpose()?,
                nano_cpus: self.cpus.as_deref().map(parse::parse_cpus).transpose()?,
                cpu_shares: self.cpu_shares,
                cpuset_cpus: self.cpuset_cpus.clone(),
                pids_limit: self.pids_limit,
            },
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            privileged: self.privileged,
            security,
            ulimits: each::<Ulimit>(&self.ulimit)?,
            restart,
            auto_remove: self.rm,
            init: self.init,
            labels,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            cgroup_parent: self.cgroup_parent.clone(),
            extra_hosts: self
                .add_host
                .iter()
                .map(|h| parse_add_host(h))
                .collect::<Result<_>>()?,
            dns: self.dns_config()?,
            group_add: self
                .group_add
                .iter()
                .map(|g| {
                    g.parse::<u32>()
                        .map_err(|_| anyhow::anyhow!("--group-add {g:?}: give a numeric group id"))
                })
                .collect::<Result<_>>()?,
            sysctls: self
                .sysctl
                .iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                    _ => anyhow::bail!("--sysctl {kv:?}: use KEY=VALUE (net.ipv4.ip_forward=1)"),
                })
                .collect::<Result<_>>()?,
            userns_mapping: None,
            userns_path: None,
        })
    }

    fn dns_config(&self) -> Result<Option<DnsConfig>> {
        if self.dns.is_empty() && self.dns_search.is_empty() && self.dns_option.is_empty() {
            return Ok(None);
        }
        let nameservers = self
            .dns
            .iter()
            .map(|d| {
                d.parse()
                    .map_err(|_| anyhow::anyhow!("--dns {d:?}: give an IP address"))
            })
            .collect::<Result<_>>()?;
        Ok(Some(DnsConfig {
            nameservers,
            searches: self.dns_search.clone(),
            options: self.dns_option.clone(),
            base: DnsBase::Replace,
        }))
    }
}

/// `--add-host NAME:IP` (IPv6 addresses may be in brackets; Docker's
/// `NAME=IP` too).
fn parse_add_host(v: &str) -> Result<(String, std::net::IpAddr)> {
    let (name, ip) = v
        .split_once('=')
        .or_else(|| v.split_once(':'))
        .ok_or_else(|| anyhow::anyhow!("--add-host {v:?}: use NAME:IP"))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    let ip = ip
        .parse()
        .map_err(|_| anyhow::anyhow!("--add-host {v:?}: {ip:?} is not an IP address"))?;
    if name.is_empty() {
        anyhow::bail!("--add-host {v:?}: the name is empty");
    }
    Ok((name.to_string(), ip))
}
