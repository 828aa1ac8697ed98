//! The busybox rootfs and [`Bundle`] (rootfs + config.json).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::UNTIL_TERM;
use super::host::mounts_under;

/// Busybox rootfs shared (via hard links) by every bundle of this test process,
/// built once per process under cargo's target tmp dir; dirs left there by
/// processes that are gone are removed at that point.
fn base_rootfs() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pea-test-rootfs");
        fs::create_dir_all(&parent).unwrap();
        for e in fs::read_dir(&parent).unwrap().flatten() {
            let stale = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if stale && mounts_under(&e.path()).is_empty() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let dir = parent.join(std::process::id().to_string());
        build_base_rootfs(&dir);
        dir
    })
}

fn build_base_rootfs(root: &Path) {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "busybox-static must be installed at /bin/busybox"
    );
    if root.exists() {
        assert!(
            mounts_under(root).is_empty(),
            "mounts under {}",
            root.display()
        );
        fs::remove_dir_all(root).unwrap();
    }
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(root.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    let list = Command::new(busybox).arg("--list-full").output().unwrap();
    assert!(list.status.success(), "busybox --list-full failed");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = root.join(applet.trim());
        if applet.trim().is_empty() || link.symlink_metadata().is_ok() {
            continue;
        }
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink("/bin/busybox", &link).unwrap();
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .unwrap();
}

/// Copy a tree: dirs recreated (same mode), symlinks recreated, files hard-linked.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let mode = fs::metadata(from).unwrap().permissions().mode();
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Replace a (possibly hard-linked) file by a private copy, so it can be chowned/modified.
fn unshare_file(p: &Path) {
    let tmp = p.with_extension("unshare-tmp");
    fs::copy(p, &tmp).unwrap();
    fs::rename(&tmp, p).unwrap();
}

/// Default capabilities of `runc spec`.
const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

fn default_config(hostname: &str) -> Value {
    let caps = json!(DEFAULT_CAPS);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

pub struct Bundle {
    dir: PathBuf,
    /// The config, written to config.json by [`Bundle::save`] (and by `Runtime::create`/`run`).
    pub config: Value,
}

impl Bundle {
    /// A bundle at `dir` (created) with a fresh rootfs copy and the default config.
    pub(super) fn new(dir: PathBuf, hostname: &str) -> Self {
        copy_tree(base_rootfs(), &dir.join("rootfs"));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Bundle {
            dir,
            config: default_config(hostname),
        }
    }
    pub fn path(&self) -> &Path {
        &self.dir
    }
    pub fn path_str(&self) -> &str {
        self.dir.to_str().expect("utf-8 path")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn hostname(&self) -> String {
        self.config["hostname"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    pub fn save(&self) {
        let s = serde_json::to_string_pretty(&self.config).unwrap();
        fs::write(self.dir.join("config.json"), s).unwrap();
    }

    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }
    /// `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }
    /// Runs until SIGTERM/SIGKILL ([`UNTIL_TERM`]).
    pub fn long_running(&mut self) -> &mut Self {
        self.sh(UNTIL_TERM)
    }
    pub fn env(&mut self, kv: &str) -> &mut Self {
        self.config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(json!(kv));
        self
    }
    pub fn cwd(&mut self, d: &str) -> &mut Self {
        self.config["process"]["cwd"] = json!(d);
        self
    }
    pub fn terminal(&mut self, on: bool) -> &mut Self {
        self.config["process"]["terminal"] = json!(on);
        self
    }
    pub fn user(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.config["process"]["user"] = json!({"uid": uid, "gid": gid});
        self
    }
    pub fn readonly_root(&mut self, ro: bool) -> &mut Self {
        self.config["root"]["readonly"] = json!(ro);
        self
    }
    pub fn set_hostname(&mut self, h: &str) -> &mut Self {
        self.config["hostname"] = json!(h);
        self
    }
    /// Add capabilities to the bounding, effective and permitted sets.
    pub fn add_caps(&mut self, caps: &[&str]) -> &mut Self {
        for set in ["bounding", "effective", "permitted"] {
            let a = self.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap();
            for c in caps {
                if !a.iter().any(|v| v == c) {
                    a.push(json!(c));
                }
            }
        }
        self
    }
    /// Add (or replace) namespace `kind`, optionally joining `path`.
    pub fn namespace(&mut self, kind: &str, path: Option<&str>) -> &mut Self {
        self.remove_namespace(kind);
        let mut ns = json!({"type": kind});
        if let Some(p) = path {
            ns["path"] = json!(p);
        }
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(ns);
        self
    }
    pub fn remove_namespace(&mut self, kind: &str) -> &mut Self {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != kind);
        self
    }
    pub fn mount(&mut self, dest: &str, typ: &str, source: &str, opts: &[&str]) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": dest, "type": typ, "source": source, "options": opts
        }));
        self
    }
    /// Bind-mount host dir `host` at `dest` (read-only when `ro`).
    pub fn bind(&mut self, host: &Path, dest: &str, ro: bool) -> &mut Self {
        let opts: &[&str] = if ro {
            &["rbind", "ro"]
        } else {
            &["rbind", "rw"]
        };
        self.mount(dest, "bind", host.to_str().unwrap(), opts)
    }
    pub fn uid_map(&mut self, container: u32, host: u32, size: u32) -> &mut Self {
        self.id_map("uidMappings", container, host, size)
    }
    pub fn gid_map(&mut self, container: u32, host: u32, size: u32) -> &mut Self {
        self.id_map("gidMappings", container, host, size)
    }
    fn id_map(&mut self, key: &str, container: u32, host: u32, size: u32) -> &mut Self {
        let linux = self.config["linux"].as_object_mut().unwrap();
        let maps = linux.entry(key).or_insert_with(|| json!([]));
        maps.as_array_mut().unwrap().push(json!({
            "containerID": container, "hostID": host, "size": size
        }));
        self
    }
    /// Append a hook (`kind` = prestart, createRuntime, ...). `args` includes argv[0].
    pub fn hook(&mut self, kind: &str, path: &str, args: &[&str]) -> &mut Self {
        let cfg = self.config.as_object_mut().unwrap();
        let hooks = cfg.entry("hooks").or_insert_with(|| json!({}));
        let list = hooks
            .as_object_mut()
            .unwrap()
            .entry(kind)
            .or_insert_with(|| json!([]));
        list.as_array_mut()
            .unwrap()
            .push(json!({"path": path, "args": args}));
        self
    }
    pub fn annotation(&mut self, k: &str, v: &str) -> &mut Self {
        let cfg = self.config.as_object_mut().unwrap();
        let a = cfg.entry("annotations").or_insert_with(|| json!({}));
        a[k] = json!(v);
        self
    }
    /// Chown the whole rootfs (after un-sharing hard-linked files).
    pub fn chown_rootfs(&self, uid: u32, gid: u32) {
        fn walk(p: &Path, uid: u32, gid: u32) {
            let md = fs::symlink_metadata(p).unwrap();
            if md.is_file() && md.nlink() > 1 {
                unshare_file(p);
            }
            std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
            if md.is_dir() {
                for e in fs::read_dir(p).unwrap().flatten() {
                    walk(&e.path(), uid, gid);
                }
            }
        }
        walk(&self.rootfs(), uid, gid);
    }
    /// Copy a dynamically linked host binary and its libraries (per `ldd`) into
    /// the rootfs at the same paths.
    pub fn add_host_binary(&self, bin: &str) {
        let ldd = Command::new("ldd").arg(bin).output().expect("ldd");
        let mut files = vec![bin.to_string()];
        for l in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = l
                .split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(str::to_string);
            files.extend(path);
        }
        for f in files {
            let dst = self.rootfs().join(f.trim_start_matches('/'));
            fs::create_dir_all(dst.parent().unwrap()).unwrap();
            if dst.symlink_metadata().is_ok() {
                fs::remove_file(&dst).unwrap();
            }
            fs::copy(&f, &dst).unwrap_or_else(|e| panic!("copy {f}: {e}"));
        }
    }
    /// Write `content` to `rel` inside the rootfs (mode 0755).
    pub fn write_file(&self, rel: &str, content: &str) {
        let p = self.rootfs().join(rel.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let mut f = File::create(&p).unwrap();
        f.write_all(content.as_bytes()).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
}
