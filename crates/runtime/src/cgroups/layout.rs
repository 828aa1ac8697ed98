//! Host cgroup layout detection from /proc/self/mountinfo and /proc/self/cgroup.
//!
//! A [`Layout`] holds the mount points of every cgroup hierarchy. Managers
//! only ever touch files below these mount points, so a `Layout` parsed from
//! fixture text pointing into a temporary directory exercises all file writes
//! without touching the host.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::error::{CgroupError, Result};

/// cgroup v1 subsystems the kernel may expose (used to tell controller names
/// from mount options such as `rw`, `noprefix` or `release_agent=`).
const V1_SUBSYSTEMS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "io",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "blkio",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// Which kind of host this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    /// Only cgroup v1 hierarchies.
    V1,
    /// Only the unified cgroup2 hierarchy.
    V2,
    /// v1 controller hierarchies plus a cgroup2 mount for the rest.
    Hybrid,
}

/// One mounted cgroup v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    pub mount_point: PathBuf,
    /// The hierarchy path shown at `mount_point` (mountinfo "root" field).
    pub root: PathBuf,
    /// Controllers bound to the hierarchy, including named ones ("name=systemd").
    pub controllers: Vec<String>,
}

/// The mounted cgroup2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedMount {
    pub mount_point: PathBuf,
    pub root: PathBuf,
}

/// One line of /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnCgroup {
    pub hierarchy_id: u32,
    /// Empty for the unified hierarchy.
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

/// Where the cgroup hierarchies of this host are mounted, and where the
/// calling process sits in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub v1: Vec<V1Mount>,
    pub unified: Option<UnifiedMount>,
    pub own: Vec<OwnCgroup>,
}

impl Layout {
    /// Detect the layout of the calling process's mount namespace.
    pub fn detect() -> Result<Layout> {
        let mountinfo = super::fs::read_file(Path::new("/proc/self/mountinfo"))?;
        let cgroup = super::fs::read_file(Path::new("/proc/self/cgroup"))?;
        Layout::parse(&mountinfo, &cgroup)
    }

    /// Build a layout from the text of a mountinfo and a proc cgroup file.
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Result<Layout> {
        let own = parse_proc_cgroup(proc_cgroup)?;
        let listed: BTreeSet<&str> = own
            .iter()
            .flat_map(|o| o.controllers.iter().map(String::as_str))
            .collect();
        let mut v1: Vec<V1Mount> = Vec::new();
        let mut unified: Option<UnifiedMount> = None;
        for (lineno, line) in mountinfo.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let m = parse_mountinfo_line(line).ok_or_else(|| CgroupError::Parse {
                path: PathBuf::from("/proc/self/mountinfo"),
                reason: format!("malformed line {}: {line:?}", lineno + 1),
            })?;
            match m.fstype.as_str() {
                "cgroup2" => {
                    let better = match &unified {
                        None => true,
                        Some(u) => u.root != Path::new("/") && m.root == Path::new("/"),
                    };
                    if better {
                        unified = Some(UnifiedMount {
                            mount_point: m.mount_point,
                            root: m.root,
                        });
                    }
                }
                "cgroup" => {
                    let mut controllers: Vec<String> = m
                        .super_options
                        .split(',')
                        .filter(|o| {
                            o.starts_with("name=")
                                || V1_SUBSYSTEMS.contains(o)
                                || listed.contains(o)
                        })
                        .map(str::to_string)
                        .collect();
                    controllers.sort();
                    if controllers.is_empty() {
                        continue;
                    }
                    // The same hierarchy may be mounted several times (bind
                    // mounts); keep one, preferring the one showing its root.
                    if let Some(existing) = v1.iter_mut().find(|h| h.controllers == controllers) {
                        if existing.root != Path::new("/") && m.root == Path::new("/") {
                            existing.mount_point = m.mount_point;
                            existing.root = m.root;
                        }
                    } else {
                        v1.push(V1Mount {
                            mount_point: m.mount_point,
                            root: m.root,
                            controllers,
                        });
                    }
                }
                _ => {}
            }
        }
        if v1.is_empty() && unified.is_none() {
            return Err(CgroupError::NoCgroupFs {
                detail: "/proc/self/mountinfo lists no filesystem of type cgroup or cgroup2"
                    .to_string(),
            });
        }
        Ok(Layout { v1, unified, own })
    }

    /// V1 when only v1 hierarchies carry controllers, V2 when only the
    /// unified mount exists (named v1 hierarchies alone do not count), else Hybrid.
    pub fn kind(&self) -> LayoutKind {
        let real_v1 = self
            .v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        match (real_v1, self.unified.is_some()) {
            (true, true) => LayoutKind::Hybrid,
            (false, true) => LayoutKind::V2,
            _ => LayoutKind::V1,
        }
    }

    /// The v1 hierarchy holding `controller`, if mounted.
    pub fn v1_mount(&self, controller: &str) -> Option<&V1Mount> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// The caller's own cgroup in a v1 hierarchy, relative to its mount point.
    pub(crate) fn own_v1_path(&self, mount: &V1Mount) -> Option<PathBuf> {
        let line = self.own.iter().find(|o| {
            let mut c = o.controllers.clone();
            c.sort();
            !o.controllers.is_empty() && c == mount.controllers
        })?;
        relative_to_root(&line.path, &mount.root)
    }

    /// The caller's own cgroup in the unified hierarchy, relative to its mount point.
    pub(crate) fn own_unified_path(&self) -> Option<PathBuf> {
        let mount = self.unified.as_ref()?;
        let line = self
            .own
            .iter()
            .find(|o| o.hierarchy_id == 0 && o.controllers.is_empty())?;
        relative_to_root(&line.path, &mount.root)
    }
}

/// Map a hierarchy path to a path relative to a mount showing `root`.
fn relative_to_root(path: &Path, root: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    Some(Path::new("/").join(rel))
}

struct MountLine {
    root: PathBuf,
    mount_point: PathBuf,
    fstype: String,
    super_options: String,
}

/// Parse one mountinfo line (see proc(5)): the optional fields run up to a
/// lone "-", after which come fstype, source and super options.
fn parse_mountinfo_line(line: &str) -> Option<MountLine> {
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 || fields.len() < sep + 4 {
        return None;
    }
    Some(MountLine {
        root: PathBuf::from(unescape(fields[3])),
        mount_point: PathBuf::from(unescape(fields[4])),
        fstype: fields[sep + 1].to_string(),
        super_options: fields[sep + 3].to_string(),
    })
}

/// Undo the octal escapes mountinfo uses for space, tab, newline and backslash.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse /proc/<pid>/cgroup: "hierarchy-id:controller-list:path" per line.
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<OwnCgroup>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CgroupError::Parse {
                path: PathBuf::from("/proc/self/cgroup"),
                reason: format!("expected \"id:controllers:path\", got {line:?}"),
            });
        };
        let hierarchy_id = id.parse::<u32>().map_err(|e| CgroupError::Parse {
            path: PathBuf::from("/proc/self/cgroup"),
            reason: format!("bad hierarchy id in {line:?}: {e}"),
        })?;
        out.push(OwnCgroup {
            hierarchy_id,
            controllers: ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            path: PathBuf::from(path),
        });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Mountinfo text for a hybrid host like the build machine, rooted at `base`.
    pub(crate) fn hybrid_mountinfo(base: &str) -> String {
        let mut s = String::from(
            "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
             31 23 0:28 / BASE rw,relatime - tmpfs tmpfs rw,mode=755\n",
        );
        let v1 = [
            ("cpu", "cpu"),
            ("cpuacct", "cpuacct"),
            ("cpuset", "cpuset"),
            ("memory", "memory"),
            ("devices", "devices"),
            ("freezer", "freezer"),
            ("blkio", "blkio"),
            ("pids", "pids"),
            ("systemd", "name=systemd"),
        ];
        for (i, (dir, opt)) in v1.iter().enumerate() {
            s.push_str(&format!(
                "{} 31 0:{} / BASE/{dir} rw,relatime - cgroup cgroup rw,{opt}\n",
                32 + i,
                29 + i
            ));
        }
        s.push_str("41 31 0:38 / BASE/unified rw,relatime - cgroup2 cgroup2 rw\n");
        s.replace("BASE", base)
    }

    pub(crate) const HYBRID_PROC_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n\
        6:freezer:/\n5:devices:/\n4:memory:/process_api/abc\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    #[test]
    fn parses_hybrid_host() {
        let l = Layout::parse(&hybrid_mountinfo("/sys/fs/cgroup"), HYBRID_PROC_CGROUP).unwrap();
        assert_eq!(l.kind(), LayoutKind::Hybrid);
        assert_eq!(l.v1.len(), 9);
        assert_eq!(
            l.v1_mount("memory").unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            l.v1_mount("name=systemd").unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/systemd")
        );
        assert_eq!(
            l.unified.as_ref().unwrap().mount_point,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        let mem = l.v1_mount("memory").unwrap();
        assert_eq!(l.own_v1_path(mem), Some(PathBuf::from("/process_api/abc")));
        assert_eq!(l.own_unified_path(), Some(PathBuf::from("/")));
    }

    #[test]
    fn parses_v1_with_comounted_controllers_and_odd_options() {
        let mi = "30 25 0:26 / /sys/fs/cgroup/systemd rw,nosuid shared:9 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd\n\
                  33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct\n\
                  34 25 0:30 / /sys/fs/cgroup/net_cls,net_prio rw shared:15 - cgroup cgroup rw,net_cls,net_prio\n\
                  35 25 0:31 / /sys/fs/cgroup/memory rw shared:16 - cgroup cgroup rw,memory\n\
                  36 25 0:31 / /mnt/memory\\040copy rw shared:16 - cgroup cgroup rw,memory\n";
        let pc = "12:memory:/user.slice\n4:net_cls,net_prio:/\n3:cpu,cpuacct:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n";
        let l = Layout::parse(mi, pc).unwrap();
        assert_eq!(l.kind(), LayoutKind::V1);
        assert_eq!(l.v1.len(), 4, "bind mount of memory deduplicated");
        let cpu = l.v1_mount("cpuacct").unwrap();
        assert_eq!(
            cpu.controllers,
            vec!["cpu".to_string(), "cpuacct".to_string()]
        );
        assert_eq!(cpu.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(l.own_v1_path(cpu), Some(PathBuf::from("/user.slice")));
        let sd = l.v1_mount("name=systemd").unwrap();
        assert_eq!(sd.controllers, vec!["name=systemd".to_string()]);
        assert!(l.unified.is_none());
    }

    #[test]
    fn parses_v2_host_with_namespaced_root() {
        let mi = "29 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw,nosuid,nodev shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let pc = "0::/kubepods/pod1/ctr\n";
        let l = Layout::parse(mi, pc).unwrap();
        assert_eq!(l.kind(), LayoutKind::V2);
        assert_eq!(l.own_unified_path(), Some(PathBuf::from("/ctr")));
    }

    #[test]
    fn mountinfo_escapes_and_errors() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert!(Layout::parse("garbage line\n", "0::/\n").is_err());
        let err = Layout::parse("22 1 0:1 / /proc rw - proc proc rw\n", "0::/\n").unwrap_err();
        assert!(matches!(err, CgroupError::NoCgroupFs { .. }));
        assert!(parse_proc_cgroup("x:y\n").is_err());
    }

    #[test]
    fn detects_this_host() {
        // Whatever the host is, detection must succeed and agree with /proc.
        let l = Layout::detect().unwrap();
        assert!(!l.own.is_empty());
    }
}
