//! Linux security modules: `process.apparmorProfile`, `process.selinuxLabel`
//! and `linux.mountLabel`.
//!
//! The runtime side ([`Host`]) finds out which LSMs the host runs and refuses
//! a spec that asks for one it lacks, before anything is made (a profile
//! that silently does not apply is a container that silently runs
//! unconfined). AppArmor's `unconfined` asks for no confinement and is
//! accepted everywhere. The child side ([`ExecLabels::apply`]) sets the
//! labels the next execve takes on: `exec <profile>` written to
//! /proc/thread-self/attr/apparmor/exec (attr/exec before Linux 5.8), the
//! SELinux context to /proc/thread-self/attr/exec, each checked to be a
//! file of procfs (a container's fake /proc must not swallow the write,
//! CVE-2019-16884). The mount label goes into the data of the container's
//! own filesystem mounts as `context="<label>"`.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error(
        "{field} {value:?}: {lsm} is not enabled on this host ({why}); remove it from the spec or run on a host with {lsm}"
    )]
    Missing {
        field: &'static str,
        value: String,
        lsm: &'static str,
        why: String,
    },
    #[error("{field} {value:?}: {what}: {source}")]
    Apply {
        field: &'static str,
        value: String,
        what: String,
        source: std::io::Error,
    },
}

/// Which LSMs the host runs, read from sysfs (under `root`, for tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    pub apparmor: bool,
    pub selinux: bool,
    /// What was looked at, for the error message.
    evidence: String,
}

/// The labels a container process takes on at its execve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecLabels {
    pub apparmor: Option<String>,
    pub selinux: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Host {
    /// The running host.
    pub fn probe() -> Self {
        Self::probe_at(Path::new("/"))
    }

    /// The host whose /sys is under `root`.
    pub fn probe_at(root: &Path) -> Self {
        let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
        let lsm_list = read("sys/kernel/security/lsm").unwrap_or_default();
        let listed = |name: &str| lsm_list.trim().split(',').any(|l| l == name);
        let apparmor = read("sys/module/apparmor/parameters/enabled")
            .is_some_and(|s| s.trim_start().starts_with('Y'))
            || listed("apparmor");
        let selinux = root.join("sys/fs/selinux/enforce").exists() || listed("selinux");
        let evidence = if lsm_list.trim().is_empty() {
            "no /sys/kernel/security/lsm, no /sys/module/apparmor, no selinuxfs at /sys/fs/selinux"
                .to_string()
        } else {
            format!("/sys/kernel/security/lsm lists {:?}", lsm_list.trim())
        };
        Host {
            apparmor,
            selinux,
            evidence,
        }
    }

    fn missing(&self, field: &'static str, value: &str, lsm: &'static str) -> LsmError {
        LsmError::Missing {
            field,
            value: value.to_string(),
            lsm,
            why: self.evidence.clone(),
        }
    }

    /// The labels `p` asks for, or why this host cannot give them.
    pub fn exec_labels(&self, p: &Process) -> Result<ExecLabels, LsmError> {
        let mut out = ExecLabels::default();
        if let Some(profile) = nonempty(p.apparmor_profile()) {
            if self.apparmor {
                out.apparmor = Some(profile.to_string());
            } else if profile != "unconfined" {
                return Err(self.missing("process.apparmorProfile", profile, "AppArmor"));
            }
        }
        if let Some(label) = nonempty(p.selinux_label()) {
            if !self.selinux {
                return Err(self.missing("process.selinuxLabel", label, "SELinux"));
            }
            out.selinux = Some(label.to_string());
        }
        Ok(out)
    }

    /// `linux.mountLabel` to apply, or why this host cannot.
    pub fn mount_label(&self, label: &Option<String>) -> Result<Option<String>, LsmError> {
        match nonempty(label) {
            None => Ok(None),
            Some(l) if self.selinux => Ok(Some(l.to_string())),
            Some(l) => Err(self.missing("linux.mountLabel", l, "SELinux")),
        }
    }
}

/// `data` with the SELinux mount context added, as runc's FormatMountLabel:
/// quoted, since a label with categories holds commas.
pub fn format_mount_label(data: &str, label: &str) -> String {
    if label.is_empty() {
        return data.to_string();
    }
    let ctx = format!("context=\"{label}\"");
    if data.is_empty() {
        ctx
    } else {
        format!("{data},{ctx}")
    }
}

/// Whether a mount of `fstype` takes the mount label in its data (as runc:
/// not bind mounts, nor proc, sysfs, mqueue and cgroup, which are labelled
/// by policy).
pub fn labels_mount(fstype: &str, bind: bool) -> bool {
    !bind
        && !matches!(
            fstype,
            "proc" | "sysfs" | "mqueue" | "cgroup" | "cgroup2" | "bind"
        )
}

/// The line written to the AppArmor attribute for `profile`.
pub fn apparmor_exec_line(profile: &str) -> String {
    format!("exec {profile}")
}

impl ExecLabels {
    pub fn is_empty(&self) -> bool {
        self.apparmor.is_none() && self.selinux.is_none()
    }

    /// Sets the labels the next execve applies (in the process that will exec).
    pub fn apply(&self) -> Result<(), LsmError> {
        if let Some(p) = &self.apparmor {
            write_attr(
                "process.apparmorProfile",
                p,
                &[
                    "/proc/thread-self/attr/apparmor/exec",
                    "/proc/thread-self/attr/exec",
                ],
                &apparmor_exec_line(p),
            )?;
        }
        if let Some(l) = &self.selinux {
            write_attr(
                "process.selinuxLabel",
                l,
                &["/proc/thread-self/attr/exec"],
                l,
            )?;
        }
        Ok(())
    }
}

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Writes `line` to the first of `paths` that exists, after checking that it
/// is a procfs file.
fn write_attr(
    field: &'static str,
    value: &str,
    paths: &[&str],
    line: &str,
) -> Result<(), LsmError> {
    let err = |what: String, source: std::io::Error| LsmError::Apply {
        field,
        value: value.to_string(),
        what,
        source,
    };
    let mut last = None;
    for p in paths {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(p);
        let mut f = match f {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                last = Some((PathBuf::from(p), e));
                continue;
            }
            Err(e) => return Err(err(format!("open {p}"), e)),
        };
        let st = nix::sys::statfs::fstatfs(f.as_fd())
            .map_err(|e| err(format!("statfs {p}"), e.into()))?;
        if st.filesystem_type().0 as i64 != PROC_SUPER_MAGIC {
            return Err(err(
                format!("{p} is not on procfs"),
                std::io::Error::from_raw_os_error(libc::EXDEV),
            ));
        }
        return f
            .write_all(line.as_bytes())
            .map_err(|e| err(format!("write {p}"), e));
    }
    let (p, e) = last.expect("at least one path");
    Err(err(format!("open {}", p.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::ProcessBuilder;

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, content) in files {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        d
    }

    fn process(apparmor: Option<&str>, selinux: Option<&str>) -> Process {
        let mut b = ProcessBuilder::default().args(vec!["sh".to_string()]);
        if let Some(a) = apparmor {
            b = b.apparmor_profile(a.to_string());
        }
        if let Some(s) = selinux {
            b = b.selinux_label(s.to_string());
        }
        b.build().unwrap()
    }

    #[test]
    fn detects_apparmor_and_selinux() {
        let none = fake(&[]);
        let h = Host::probe_at(none.path());
        assert!(!h.apparmor && !h.selinux);

        let aa = fake(&[("sys/module/apparmor/parameters/enabled", "Y\n")]);
        let h = Host::probe_at(aa.path());
        assert!(h.apparmor && !h.selinux);

        let aa_off = fake(&[("sys/module/apparmor/parameters/enabled", "N\n")]);
        assert!(!Host::probe_at(aa_off.path()).apparmor);

        let se = fake(&[("sys/fs/selinux/enforce", "1")]);
        let h = Host::probe_at(se.path());
        assert!(h.selinux && !h.apparmor);

        let listed = fake(&[("sys/kernel/security/lsm", "lockdown,capability,selinux\n")]);
        let h = Host::probe_at(listed.path());
        assert!(h.selinux && !h.apparmor);
    }

    #[test]
    fn missing_lsm_is_one_clear_error() {
        let h = Host::probe_at(fake(&[]).path());
        let e = h
            .exec_labels(&process(Some("my-profile"), None))
            .unwrap_err()
            .to_string();
        assert!(e.contains("process.apparmorProfile") && e.contains("my-profile"));
        assert!(e.contains("AppArmor is not enabled on this host"), "{e}");
        assert!(!e.contains('\n'));
        let e = h
            .exec_labels(&process(None, Some("system_u:system_r:container_t:s0")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("process.selinuxLabel") && e.contains("SELinux"),
            "{e}"
        );
        let e = h
            .mount_label(&Some("system_u:object_r:container_file_t:s0".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.mountLabel"), "{e}");
        // Nothing asked, nothing refused; "unconfined" needs no AppArmor.
        assert_eq!(
            h.exec_labels(&process(None, None)).unwrap(),
            ExecLabels::default()
        );
        assert_eq!(
            h.exec_labels(&process(Some("unconfined"), Some(" ")))
                .unwrap(),
            ExecLabels::default()
        );
        assert_eq!(h.mount_label(&Some(String::new())).unwrap(), None);
    }

    #[test]
    fn present_lsm_labels_are_kept() {
        let h = Host::probe_at(
            fake(&[
                ("sys/module/apparmor/parameters/enabled", "Y"),
                ("sys/fs/selinux/enforce", "0"),
            ])
            .path(),
        );
        let l = h
            .exec_labels(&process(Some("docker-default"), Some("u:r:t:s0:c1,c2")))
            .unwrap();
        assert_eq!(l.apparmor.as_deref(), Some("docker-default"));
        assert_eq!(l.selinux.as_deref(), Some("u:r:t:s0:c1,c2"));
        assert_eq!(apparmor_exec_line("docker-default"), "exec docker-default");
        assert_eq!(
            h.mount_label(&Some("u:object_r:f:s0".into())).unwrap(),
            Some("u:object_r:f:s0".into())
        );
    }

    #[test]
    fn mount_label_formatting() {
        assert_eq!(
            format_mount_label("", "u:object_r:t:s0:c1,c2"),
            "context=\"u:object_r:t:s0:c1,c2\""
        );
        assert_eq!(
            format_mount_label("mode=755,size=65536k", "u:object_r:t:s0"),
            "mode=755,size=65536k,context=\"u:object_r:t:s0\""
        );
        assert_eq!(format_mount_label("mode=755", ""), "mode=755");
        assert!(labels_mount("tmpfs", false) && labels_mount("devpts", false));
        assert!(!labels_mount("tmpfs", true));
        for t in ["proc", "sysfs", "mqueue", "cgroup", "cgroup2", "bind"] {
            assert!(!labels_mount(t, false), "{t}");
        }
    }

    #[test]
    fn attr_writes_refuse_files_outside_procfs() {
        let d = tempfile::tempdir().unwrap();
        let fake = d.path().join("exec");
        std::fs::write(&fake, "").unwrap();
        let e = write_attr("process.selinuxLabel", "x", &[fake.to_str().unwrap()], "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not on procfs"), "{e}");
        assert_eq!(std::fs::read_to_string(&fake).unwrap(), "");
    }
}
