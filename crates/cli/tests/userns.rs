//! User namespaces beyond the basic uid mapping (namespaces.rs has that):
//! id-mapped mounts (a rootfs owned by host root shown as owned by the
//! container's root, bind mounts with mappings of their own) and rootless
//! containers run by an unprivileged user this file creates (and removes,
//! whatever happens), with uid/gid maps written directly or through
//! newuidmap/newgidmap.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Bundle, Runtime, proc_alive, proc_status, runtime_bin, runtime_is_runc, wait_for};
use serde_json::{Value, json};

const ROOTFS_IDMAP: &str = "io.peapod.rootfs.idmap";

/// The rootfs annotation, pea's error texts and features are pea's own.
fn pea_only() -> bool {
    if runtime_is_runc() {
        eprintln!("runc: skipping a check of pea's own behaviour");
    }
    !runtime_is_runc()
}

fn userns(b: &mut Bundle) -> &mut Bundle {
    b.namespace("user", None)
        .uid_map(0, 100000, 65536)
        .gid_map(0, 100000, 65536)
}

fn host_owner(p: &Path) -> (u32, u32) {
    let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (md.uid(), md.gid())
}

#[test]
fn idmapped_rootfs_owned_by_host_root() {
    if !pea_only() {
        return;
    }
    let rt = Runtime::new("uns-idmap-root");
    for annotation in [Some("true"), Some("auto"), None] {
        let mut b = rt.bundle();
        assert_eq!(host_owner(&b.rootfs().join("bin/busybox")), (0, 0));
        userns(&mut b).readonly_root(false).sh(
            "stat -c %u:%g /bin/busybox; touch /tmp/made && stat -c %u:%g /tmp/made; \
                 awk '$5 == \"/\"' /proc/self/mountinfo | grep -c idmapped; true",
        );
        if let Some(a) = annotation {
            b.annotation(ROOTFS_IDMAP, a);
        }
        let id = rt.id();
        let out = rt.run(&b, &id).ok();
        let lines = out.lines();
        if annotation.is_some() {
            // Host root's files are the container root's; what it makes is
            // host root's on disk: nothing was chown-ed.
            assert_eq!(lines, ["0:0", "0:0", "1"], "{annotation:?}: {out:?}");
            assert_eq!(host_owner(&b.rootfs().join("bin/busybox")), (0, 0));
            assert_eq!(host_owner(&b.rootfs().join("tmp/made")), (0, 0));
        } else {
            // Not asked for: host root is unmapped in the container.
            assert_eq!(
                lines.first().map(String::as_str),
                Some("65534:65534"),
                "{out:?}"
            );
        }
        rt.assert_gone(&id);
    }
}

#[test]
fn auto_leaves_a_rootfs_owned_by_the_mapped_ids_alone() {
    if !pea_only() {
        return;
    }
    let rt = Runtime::new("uns-idmap-auto");
    let mut b = rt.bundle();
    userns(&mut b)
        .annotation(ROOTFS_IDMAP, "auto")
        .sh("stat -c %u:%g /bin/busybox; awk '$5 == \"/\"' /proc/self/mountinfo");
    b.chown_rootfs(100000, 100000);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(lines[0], "0:0", "{out:?}");
    assert!(
        !lines[1].contains("idmapped"),
        "rootfs was id-mapped: {out:?}"
    );
    rt.assert_gone(&id);
}

#[test]
fn idmapped_bind_mounts_show_the_mapped_owner() {
    let rt = Runtime::new("uns-idmap-bind");
    let src = rt.host_dir("src");
    fs::write(src.join("f"), "x").unwrap();
    std::os::unix::fs::chown(src.join("f"), Some(1234), Some(1234)).unwrap();
    std::os::unix::fs::chown(&src, Some(0), Some(0)).unwrap();
    let mut b = rt.bundle();
    userns(&mut b).sh(
        "for d in explicit own plain; do stat -c \"$d %u:%g\" /$d/f; done; stat -c 'dir %u' /own; \
         grep -c idmapped /proc/self/mountinfo",
    );
    let src_s = src.to_str().unwrap();
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    // Mappings of its own: on-disk 1234 is host 100007/100008, which the
    // container's namespace shows as 7/8.
    mounts.push(json!({
        "destination": "/explicit", "type": "bind", "source": src_s,
        "options": ["rbind", "ro", "idmap"],
        "uidMappings": [{"containerID": 1234, "hostID": 100007, "size": 1}],
        "gidMappings": [{"containerID": 1234, "hostID": 100008, "size": 1}]
    }));
    // ridmap without mappings: the container's own (on-disk n shows as n).
    mounts.push(json!({
        "destination": "/own", "type": "bind", "source": src_s,
        "options": ["bind", "ridmap"]
    }));
    mounts.push(json!({
        "destination": "/plain", "type": "bind", "source": src_s,
        "options": ["rbind"]
    }));
    b.chown_rootfs(100000, 100000);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            "explicit 7:8",
            "own 1234:1234",
            "plain 65534:65534",
            "dir 0",
            "2"
        ],
        "{out:?}"
    );
    assert_eq!(host_owner(&src.join("f")), (1234, 1234));
    rt.assert_gone(&id);
}

#[test]
fn idmapped_bind_mount_without_a_user_namespace() {
    let rt = Runtime::new("uns-idmap-nouserns");
    let src = rt.host_dir("src");
    fs::write(src.join("f"), "x").unwrap();
    std::os::unix::fs::chown(src.join("f"), Some(1234), Some(1234)).unwrap();
    let mut b = rt.bundle();
    b.sh("stat -c %u:%g /data/f; touch /data/new && stat -c %u:%g /data/new");
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": src.to_str().unwrap(),
        "options": ["rbind", "rw", "idmap"],
        "uidMappings": [{"containerID": 1234, "hostID": 42, "size": 1},
                        {"containerID": 0, "hostID": 0, "size": 1}],
        "gidMappings": [{"containerID": 1234, "hostID": 43, "size": 1},
                        {"containerID": 0, "hostID": 0, "size": 1}]
    }));
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["42:43", "0:0"], "{out:?}");
    assert_eq!(host_owner(&src.join("f")), (1234, 1234));
    assert_eq!(host_owner(&src.join("new")), (0, 0));
    rt.assert_gone(&id);
}

#[test]
fn idmap_requests_the_runtime_cannot_honour_fail_cleanly() {
    if !pea_only() {
        return;
    }
    let rt = Runtime::new("uns-idmap-errors");
    let src = rt.host_dir("src");
    let src_s = src.to_str().unwrap();
    type Setup<'a> = Box<dyn Fn(&mut Bundle) + 'a>;
    let cases: Vec<(Setup, &[&str])> = vec![
        (
            Box::new(|b: &mut Bundle| {
                userns(b).mount("/t", "tmpfs", "tmpfs", &["idmap"]);
            }),
            &["bind mounts only"],
        ),
        (
            Box::new(move |b: &mut Bundle| {
                b.mount("/d", "bind", src_s, &["rbind", "idmap"]);
            }),
            &["user namespace"],
        ),
        (
            Box::new(|b: &mut Bundle| {
                b.annotation(ROOTFS_IDMAP, "true");
            }),
            &["user namespace"],
        ),
        (
            Box::new(|b: &mut Bundle| {
                userns(b).annotation(ROOTFS_IDMAP, "sometimes");
            }),
            &[ROOTFS_IDMAP],
        ),
        (
            Box::new(move |b: &mut Bundle| {
                userns(b).config["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({
                        "destination": "/d", "type": "bind", "source": src_s,
                        "options": ["rbind"],
                        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 1}]
                    }));
            }),
            &["gidMappings"],
        ),
    ];
    for (setup, needles) in cases {
        let mut b = rt.bundle();
        b.long_running();
        setup(&mut b);
        let id = rt.id();
        rt.create(&b, &id).failed().mentions_any(needles);
        rt.assert_gone(&id);
    }
}

#[test]
fn features_report_idmapped_mounts() {
    if !pea_only() {
        return;
    }
    let rt = Runtime::new("uns-features");
    let out = rt.cmd(&["features"]).ok();
    let f: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        f["linux"]["mountExtensions"]["idmap"]["enabled"],
        json!(true),
        "{out:?}"
    );
    let opts = f["mountOptions"].as_array().unwrap();
    for o in ["idmap", "ridmap"] {
        assert!(opts.iter().any(|v| v == o), "{o} missing: {opts:?}");
    }
}

// ---------------------------------------------------------------------------
// rootless

/// useradd/userdel lock /etc/passwd: one at a time within this test binary.
static USERS: Mutex<()> = Mutex::new(());

/// A host user made for one test, removed on drop (with every process it
/// still has and its /etc/subuid and /etc/subgid entries).
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    /// A directory the user owns (its HOME), inside the test's dir.
    home: PathBuf,
    /// pea, copied where the user can run it.
    pea: PathBuf,
}

/// Runs `cmd` to completion (bounded). Output goes to files, not pipes: a
/// container started by `create` keeps its stdio open after pea exits.
fn run_bounded(cmd: &mut Command, what: &str) -> Output {
    use std::io::{Read, Seek};
    let mut out = tempfile::tempfile().unwrap();
    let mut err = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: timed out");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |f: &mut fs::File| {
        let mut v = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

fn sh(cmd: &mut Command, what: &str) {
    let out = run_bounded(cmd, what);
    assert!(
        out.status.success(),
        "{what}: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestUser {
    fn create(rt: &Runtime, tag: &str) -> Self {
        let name = format!("pea{tag}{}", std::process::id());
        let home = rt.base().join("users").join(&name);
        fs::create_dir_all(&home).unwrap();
        {
            let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
            sh(
                Command::new("useradd")
                    .args(["--no-create-home", "--shell", "/bin/sh", "--home-dir"])
                    .arg(&home)
                    .arg(&name),
                "useradd",
            );
        }
        let entry = nix::unistd::User::from_name(&name).ok().flatten();
        // From here on the user is removed on drop, whatever happens.
        let user = TestUser {
            uid: entry.as_ref().map_or(u32::MAX, |u| u.uid.as_raw()),
            gid: entry.as_ref().map_or(u32::MAX, |u| u.gid.as_raw()),
            name,
            home,
            pea: rt.base().join("users").join("pea"),
        };
        assert!(
            entry.is_some(),
            "useradd made no passwd entry for {}",
            user.name
        );
        std::os::unix::fs::chown(&user.home, Some(user.uid), Some(user.gid)).unwrap();
        fs::set_permissions(&user.home, fs::Permissions::from_mode(0o700)).unwrap();
        if !user.pea.exists() {
            let tmp = user.pea.with_extension("tmp");
            fs::copy(runtime_bin(), &tmp).unwrap();
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
            fs::rename(&tmp, &user.pea).unwrap();
        }
        user
    }

    /// The user's subordinate uid and gid ranges (start, count), made when
    /// useradd did not allocate them.
    fn sub_ranges(&self) -> ((u32, u32), (u32, u32)) {
        let find = |file: &str| -> Option<(u32, u32)> {
            fs::read_to_string(file).ok()?.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() == 3 && f[0] == self.name {
                    Some((f[1].parse().ok()?, f[2].parse().ok()?))
                } else {
                    None
                }
            })
        };
        if find("/etc/subuid").is_none() || find("/etc/subgid").is_none() {
            let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
            sh(
                Command::new("usermod").args([
                    "--add-subuids",
                    "700000-765535",
                    "--add-subgids",
                    "700000-765535",
                    &self.name,
                ]),
                "usermod --add-subuids",
            );
        }
        (find("/etc/subuid").unwrap(), find("/etc/subgid").unwrap())
    }

    /// `pea ARGS` as this user (in `cwd`, with `env`), bounded.
    fn pea(&self, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            &self.uid.to_string(),
            "--regid",
            &self.gid.to_string(),
            "--clear-groups",
        ])
        .arg(&self.pea)
        .args(args)
        .current_dir(cwd)
        .env_remove("XDG_RUNTIME_DIR")
        .env("HOME", &self.home)
        .env("USER", &self.name);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_bounded(&mut cmd, &format!("pea {args:?} as {}", self.name))
    }

    /// Host processes running as this user.
    fn processes(&self) -> Vec<i32> {
        let mut out = Vec::new();
        if self.uid == 0 || self.uid == u32::MAX {
            return out;
        }
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(md) = fs::metadata(e.path()) else {
                continue;
            };
            if md.uid() == self.uid && proc_alive(pid) {
                out.push(pid);
            }
        }
        out
    }

    /// A bundle the user owns, with the config.json of `pea spec --rootless`
    /// run as the user, made non-interactive and running `args`.
    fn rootless_bundle(&self, rt: &Runtime, args: &[&str]) -> Bundle {
        let mut b = rt.bundle();
        b.chown_rootfs(self.uid, self.gid);
        std::os::unix::fs::chown(b.path(), Some(self.uid), Some(self.gid)).unwrap();
        let out = self.pea(b.path(), &[], &["spec", "--rootless"]);
        assert!(out.status.success(), "spec --rootless: {out:?}");
        let text = fs::read_to_string(b.path().join("config.json")).unwrap();
        b.config = serde_json::from_str(&text).unwrap();
        assert_eq!(
            b.config["linux"]["uidMappings"][0]["hostID"],
            json!(self.uid)
        );
        b.terminal(false).args(args);
        b.save();
        assert_eq!(
            host_owner(&b.path().join("config.json")),
            (self.uid, self.gid)
        );
        b
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _lock = USERS.lock().unwrap_or_else(|e| e.into_inner());
        // Whatever the test left running as the user (its containers).
        for _ in 0..50 {
            let left = self.processes();
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = run_bounded(Command::new("userdel").arg(&self.name), "userdel");
        for file in ["/etc/subuid", "/etc/subgid"] {
            // userdel removes them; make sure, without touching other lines.
            if let Ok(text) = fs::read_to_string(file) {
                let prefix = format!("{}:", self.name);
                if text.lines().any(|l| l.starts_with(&prefix)) {
                    let kept: String = text
                        .lines()
                        .filter(|l| !l.starts_with(&prefix))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    let _ = fs::write(file, kept);
                }
            }
        }
        if !out.status.success() && !std::thread::panicking() {
            panic!(
                "userdel {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// Force-deletes (as root) the containers a test made in a user's state root.
struct UserContainers {
    root: PathBuf,
    ids: Vec<String>,
}

impl Drop for UserContainers {
    fn drop(&mut self) {
        for id in &self.ids {
            if self.root.join(id).exists() {
                let _ = run_bounded(
                    Command::new(runtime_bin())
                        .arg("--root")
                        .arg(&self.root)
                        .args(["delete", "--force", id]),
                    "delete --force",
                );
            }
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn state_pid(out: &Output) -> i32 {
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)));
    v["pid"].as_i64().unwrap() as i32
}

#[test]
fn rootless_spec_and_run() {
    let rt = Runtime::new("uns-rootless");
    let user = TestUser::create(&rt, "rl");
    let root = user.home.join("state");
    let root_s = root.to_str().unwrap();
    let id = format!("rootless-{}", std::process::id());
    let _made = UserContainers {
        root: root.clone(),
        ids: vec![id.clone()],
    };
    let b = user.rootless_bundle(
        &rt,
        &[
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map; stat -c %u /bin/busybox",
        ],
    );
    let out = user.pea(b.path(), &[], &["--root", root_s, "run", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let uid = user.uid.to_string();
    assert_eq!(
        lines,
        [vec!["0"], vec!["0"], vec!["0", &uid, "1"], vec!["0"]],
        "{}",
        text(&out)
    );
    assert!(!root.join(&id).exists(), "run left its state");

    // create/start without --root: the state lives in $XDG_RUNTIME_DIR/pea;
    // on the host the container's root is the user.
    // runc keeps it in $XDG_RUNTIME_DIR/runc.
    let xdg = user
        .home
        .join("xdg")
        .join(if runtime_is_runc() { "runc" } else { "pea" });
    let xdg_env = xdg.parent().unwrap().to_str().unwrap().to_string();
    let env = [("XDG_RUNTIME_DIR", xdg_env.as_str())];
    let id2 = format!("rootless2-{}", std::process::id());
    let _also = UserContainers {
        root: xdg.clone(),
        ids: vec![id2.clone()],
    };
    let mut b = b;
    b.long_running();
    b.save();
    let out = user.pea(b.path(), &env, &["create", &id2]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        xdg.join(&id2).is_dir(),
        "no state under $XDG_RUNTIME_DIR/pea"
    );
    let out = user.pea(b.path(), &env, &["start", &id2]);
    assert!(out.status.success(), "{}", text(&out));
    let pid = state_pid(&user.pea(b.path(), &env, &["state", &id2]));
    let host_uid = proc_status(pid, "Uid");
    assert_eq!(
        host_uid.split_whitespace().next(),
        Some(uid.as_str()),
        "host Uid: {host_uid}"
    );
    let out = user.pea(b.path(), &env, &["exec", &id2, "id", "-u"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert!(
        user.pea(b.path(), &env, &["kill", &id2, "TERM"])
            .status
            .success()
    );
    assert!(wait_for(Duration::from_secs(10), || !proc_alive(pid)));
    let out = user.pea(b.path(), &env, &["delete", &id2]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!xdg.join(&id2).exists());
    assert!(user.processes().is_empty(), "left: {:?}", user.processes());
}

#[test]
fn rootless_refuses_resources_it_cannot_apply() {
    let rt = Runtime::new("uns-rootless-res");
    let user = TestUser::create(&rt, "rr");
    let root = user.home.join("state");
    let id = format!("rootless-res-{}", std::process::id());
    let _made = UserContainers {
        root: root.clone(),
        ids: vec![id.clone()],
    };
    let mut b = user.rootless_bundle(&rt, &["true"]);
    b.config["linux"]["resources"] = json!({"pids": {"limit": 50}});
    b.save();
    let out = user.pea(
        b.path(),
        &[],
        &["--root", root.to_str().unwrap(), "create", &id],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    if !runtime_is_runc() {
        assert!(
            err.contains("linux.resources") && err.lines().count() == 1,
            "{}",
            text(&out)
        );
    }
    assert!(!root.join(&id).exists(), "state left behind");
    assert!(user.processes().is_empty());
}

#[test]
fn rootless_subuid_ranges_go_through_newuidmap() {
    assert!(
        Path::new("/usr/bin/newuidmap").exists(),
        "newuidmap is missing: install the uidmap package (scripts/setup.sh --deps-only)"
    );
    let rt = Runtime::new("uns-rootless-subuid");
    let user = TestUser::create(&rt, "su");
    let ((su, sn), (sg, gn)) = user.sub_ranges();
    assert!(sn >= 1000 && gn >= 1000, "ranges too small: {sn} {gn}");
    let root = user.home.join("state");
    let id = format!("rootless-sub-{}", std::process::id());
    let _made = UserContainers {
        root: root.clone(),
        ids: vec![id.clone()],
    };
    let mut b = user.rootless_bundle(
        &rt,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g",
        ],
    );
    b.config["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": user.uid, "size": 1},
        {"containerID": 1, "hostID": su, "size": sn}
    ]);
    b.config["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": user.gid, "size": 1},
        {"containerID": 1, "hostID": sg, "size": gn}
    ]);
    b.user(1000, 1000);
    b.save();
    let out = user.pea(
        b.path(),
        &[],
        &["--root", root.to_str().unwrap(), "run", &id],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<String>> = stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    let row = |c: u32, h: u32, n: u32| vec![c.to_string(), h.to_string(), n.to_string()];
    assert_eq!(
        lines,
        [
            row(0, user.uid, 1),
            row(1, su, sn),
            row(0, user.gid, 1),
            row(1, sg, gn),
            vec!["1000".to_string()],
            vec!["1000".to_string()],
        ],
        "{}",
        text(&out)
    );
}
