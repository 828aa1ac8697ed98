//! Host-side inspection: namespaces, processes, mounts, cgroups.

use std::fs;
use std::path::{Path, PathBuf};

/// `readlink /proc/<pid>/ns/<kind>` (`pid` None = this process).
pub fn ns_link(pid: Option<i32>, kind: &str) -> String {
    let p = match pid {
        Some(pid) => format!("/proc/{pid}/ns/{kind}"),
        None => format!("/proc/self/ns/{kind}"),
    };
    fs::read_link(&p)
        .unwrap_or_else(|e| panic!("readlink {p}: {e}"))
        .to_string_lossy()
        .into_owned()
}

pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // field 22 (starttime) is index 19 after the comm field.
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// The process exists and is neither a zombie nor dead (host pid 1 here does not reap).
pub fn proc_alive(pid: i32) -> bool {
    matches!(proc_stat(pid), Some((s, _)) if s != 'Z' && s != 'X')
}

/// A line of /proc/<pid>/status, e.g. `proc_status(pid, "Uid")` -> "100000\t100000\t...".
pub fn proc_status(pid: i32, key: &str) -> String {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Lines of this process's (= the host's) mountinfo.
pub fn host_mountinfo() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read /proc/self/mountinfo")
        .lines()
        .map(str::to_string)
        .collect()
}

/// Host mount points at or under `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    host_mountinfo()
        .iter()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mountinfo))
        .filter(|mp| mp == &dir || mp.starts_with(&format!("{dir}/")))
        .collect()
}

/// Host mountinfo lines that mention `needle` anywhere (e.g. a unique tmpfs source).
pub fn host_mounts_mentioning(needle: &str) -> Vec<String> {
    host_mountinfo()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

/// Cgroup directories named `name` anywhere under /sys/fs/cgroup (v1 or v2).
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            let p = e.path();
            if e.file_name() == name {
                out.push(p.clone());
            }
            if depth > 0 {
                walk(&p, name, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 6, &mut out);
    out
}

/// Live host processes whose cgroup path has a component named `name`.
pub fn pids_in_cgroup_named(name: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let hit = cgroup.lines().any(|l| {
            l.rsplit(':')
                .next()
                .unwrap_or("")
                .split('/')
                .any(|c| c == name)
        });
        if hit && proc_alive(pid) && pid != std::process::id() as i32 {
            out.push(pid);
        }
    }
    out
}

/// Live host processes whose command line or cgroup path mentions `id`.
pub fn processes_mentioning(id: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        if name == me || !proc_alive(pid) {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let in_cgroup = cgroup.lines().any(|l| {
            l.rsplit(':')
                .next()
                .unwrap_or("")
                .split('/')
                .any(|c| c == id)
        });
        if cmdline.contains(id) || in_cgroup {
            out.push(format!("{pid}: {cmdline}"));
        }
    }
    out
}

/// Shell prologue for container scripts that change namespaced state (addresses,
/// hostname, SysV IPC, mounts): exits 99 unless the script runs outside the
/// host's (this process's) namespaces of the given kinds, so a broken runtime
/// under test cannot make a test modify the host.
pub fn require_private_ns(kinds: &[&str]) -> String {
    kinds
        .iter()
        .map(|k| {
            format!(
                "[ \"$(readlink /proc/self/ns/{k})\" != '{}' ] || {{ echo 'in the host {k} namespace' >&2; exit 99; }}; ",
                ns_link(None, k)
            )
        })
        .collect()
}
