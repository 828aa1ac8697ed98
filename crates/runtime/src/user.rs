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

/// Writes uid_map, setgroups and gid_map of `pid` (from the parent namespace).
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
    if !uid_maps.is_empty() {
        write("uid_map", &map_text(uid_maps))?;
    }
    if !gid_maps.is_empty() {
        write("gid_map", &map_text(gid_maps))?;
    }
    Ok(())
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
