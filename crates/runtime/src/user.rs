//! The container process's identity and limits: uid/gid maps, the user
//! switch, supplementary groups, umask and rlimits.

use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::{LinuxIdMapping, PosixRlimit, PosixRlimitType};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("writing {file} for pid {pid}: {source}; check linux.uidMappings/gidMappings")]
    Map {
        file: &'static str,
        pid: i32,
        source: std::io::Error,
    },
    #[error(
        "{helper} for pid {pid}: {detail}; an unprivileged caller maps ids other than its own through {helper} (Debian package uidmap), which allows the ranges /etc/subuid and /etc/subgid give it"
    )]
    Helper {
        helper: &'static str,
        pid: i32,
        detail: String,
    },
    #[error("switching to user {uid}:{gid}: {step}: {source}")]
    Switch {
        uid: u32,
        gid: u32,
        step: &'static str,
        source: nix::Error,
    },
    #[error("rlimit {name}: soft {soft} > hard {hard}")]
    RlimitOrder { name: String, soft: u64, hard: u64 },
    #[error(
        "rlimit {name} = {soft}/{hard}: {source}; the hard limit cannot be raised above the current {current_hard} without CAP_SYS_RESOURCE"
    )]
    Rlimit {
        name: String,
        soft: u64,
        hard: u64,
        current_hard: u64,
        source: nix::Error,
    },
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Whether `maps` maps exactly one id, to the host id `own`.
fn only_own(maps: &[LinuxIdMapping], own: u32) -> bool {
    matches!(maps, [m] if m.size() == 1 && m.host_id() == own)
}

/// Writes uid_map, setgroups and gid_map of `pid` (from the parent namespace).
///
/// Root writes any mapping itself. The kernel lets an unprivileged caller
/// write only a mapping of its own uid (gid) to one id, and gid_map only
/// after "deny" went to setgroups; any other mapping goes through the setuid
/// helpers newuidmap and newgidmap, which allow the caller the ranges
/// /etc/subuid and /etc/subgid give it.
pub fn write_id_maps(
    pid: i32,
    uid_maps: &[LinuxIdMapping],
    gid_maps: &[LinuxIdMapping],
) -> Result<(), UserError> {
    let write = |file: &'static str, text: &str| {
        std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|source| UserError::Map {
            file,
            pid,
            source,
        })
    };
    let privileged = nix::unistd::geteuid().is_root();
    if !uid_maps.is_empty() {
        if privileged || only_own(uid_maps, nix::unistd::geteuid().as_raw()) {
            write("uid_map", &map_text(uid_maps))?;
        } else {
            map_with_helper("newuidmap", pid, uid_maps)?;
        }
    }
    if !gid_maps.is_empty() {
        if privileged {
            write("gid_map", &map_text(gid_maps))?;
        } else if only_own(gid_maps, nix::unistd::getegid().as_raw()) {
            write("setgroups", "deny")?;
            write("gid_map", &map_text(gid_maps))?;
        } else {
            map_with_helper("newgidmap", pid, gid_maps)?;
        }
    }
    Ok(())
}

/// Runs newuidmap/newgidmap `pid` with the triplets of `maps`.
fn map_with_helper(
    helper: &'static str,
    pid: i32,
    maps: &[LinuxIdMapping],
) -> Result<(), UserError> {
    let err = |detail: String| UserError::Helper {
        helper,
        pid,
        detail,
    };
    let path = find_helper(helper).ok_or_else(|| err("not found".into()))?;
    let mut cmd = std::process::Command::new(&path);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| err(format!("run {}: {e}", path.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    Err(err(format!(
        "mapping {:?} failed ({}): {text}",
        map_text(maps).trim(),
        out.status
    )))
}

fn find_helper(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into(), "/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The user a container process runs as.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
}

impl Identity {
    pub fn from_oci(u: &oci_spec::runtime::User) -> Self {
        Identity {
            uid: u.uid(),
            gid: u.gid(),
            additional_gids: u.additional_gids().clone().unwrap_or_default(),
            umask: u.umask(),
        }
    }

    /// setgroups, setresgid, setresuid. Capabilities survive through
    /// PR_SET_KEEPCAPS; the caller sets the final sets afterwards.
    pub fn switch(&self, setgroups_allowed: bool) -> Result<(), UserError> {
        let err = |step| {
            move |source| UserError::Switch {
                uid: self.uid,
                gid: self.gid,
                step,
                source,
            }
        };
        if setgroups_allowed {
            let groups: Vec<Gid> = self
                .additional_gids
                .iter()
                .map(|g| Gid::from_raw(*g))
                .collect();
            setgroups(&groups).map_err(err("setgroups"))?;
        }
        let gid = Gid::from_raw(self.gid);
        setresgid(gid, gid, gid).map_err(err("setresgid"))?;
        let uid = Uid::from_raw(self.uid);
        setresuid(uid, uid, uid).map_err(err("setresuid"))?;
        if let Some(mask) = self.umask {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
        Ok(())
    }
}

fn resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => libc::RLIMIT_CPU,
        T::RlimitFsize => libc::RLIMIT_FSIZE,
        T::RlimitData => libc::RLIMIT_DATA,
        T::RlimitStack => libc::RLIMIT_STACK,
        T::RlimitCore => libc::RLIMIT_CORE,
        T::RlimitRss => libc::RLIMIT_RSS,
        T::RlimitNproc => libc::RLIMIT_NPROC,
        T::RlimitNofile => libc::RLIMIT_NOFILE,
        T::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        T::RlimitAs => libc::RLIMIT_AS,
        T::RlimitLocks => libc::RLIMIT_LOCKS,
        T::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        T::RlimitNice => libc::RLIMIT_NICE,
        T::RlimitRtprio => libc::RLIMIT_RTPRIO,
        T::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Checks rlimits before anything is made (soft <= hard).
pub fn check_rlimits(limits: &[PosixRlimit]) -> Result<(), UserError> {
    for l in limits {
        if l.soft() > l.hard() {
            return Err(UserError::RlimitOrder {
                name: l.typ().to_string(),
                soft: l.soft(),
                hard: l.hard(),
            });
        }
    }
    Ok(())
}

/// Applies `process.rlimits` to the calling process.
pub fn set_rlimits(limits: &[PosixRlimit]) -> Result<(), UserError> {
    for l in limits {
        let res = resource(l.typ());
        let want = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        let rc = unsafe { libc::setrlimit(res, &want) };
        if rc != 0 {
            let source = nix::Error::last();
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into a valid rlimit struct.
            unsafe { libc::getrlimit(res, &mut cur) };
            return Err(UserError::Rlimit {
                name: l.typ().to_string(),
                soft: l.soft(),
                hard: l.hard(),
                current_hard: cur.rlim_max,
                source,
            });
        }
    }
    Ok(())
}
