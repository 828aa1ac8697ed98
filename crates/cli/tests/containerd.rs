//! containerd 1.6 drives the runtime under test through its runc shim
//! (`io.containerd.runc.v2` with BinaryName = the runtime: ctr's
//! `--runc-binary`): foreground runs with their output and exit codes, the
//! failure report of a bad command, a terminal, and a detached task with
//! exec, kill and delete. Each test starts its own containerd (own root,
//! state, socket and config under the test dir, CRI plugin off) and a Drop
//! guard kills it and everything it started, even when the test fails.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

use common::clients::{
    CLIENT_TIMEOUT, busybox_oci_archive, kill_cgroup_members, kill_processes_mentioning,
    remove_cgroup_trees, require_program, run_bounded, unique, unmount_under,
};
use common::{
    Out, Runtime, TIMEOUT, UNTIL_TERM, cgroup_dirs_named, host_mounts_mentioning, mounts_under,
    processes_mentioning, runtime_bin, wait_for,
};

const IMAGE: &str = "localhost/pea-busybox:latest";

/// A containerd of the test's own, and the ctr command line to reach it.
struct Containerd<'a> {
    rt: &'a Runtime,
    dir: PathBuf,
    sock: PathBuf,
    /// The containerd namespace; ctr puts containers in cgroup `/<ns>/<id>`.
    ns: String,
    /// The shim runs the runtime with `--root <runc_root>/<ns>`.
    runc_root: PathBuf,
    fifo_dir: PathBuf,
    child: Option<Child>,
    /// Every container id passed to `run`.
    ids: Mutex<Vec<String>>,
}

impl<'a> Containerd<'a> {
    fn start(rt: &'a Runtime) -> Self {
        let containerd = require_program("containerd");
        require_program("ctr");
        require_program("containerd-shim-runc-v2");
        let dir = rt.host_dir("containerd");
        let sock = dir.join("containerd.sock");
        let runc_root = dir.join("runc-root");
        let fifo_dir = dir.join("fifo");
        fs::create_dir_all(&fifo_dir).unwrap();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = sock.display(),
            opt = dir.join("opt").display(),
        );
        let config_path = dir.join("config.toml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new(containerd)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            rt,
            dir,
            sock,
            ns: unique("pea-ctd"),
            runc_root,
            fifo_dir,
            child: Some(child),
            ids: Mutex::new(Vec::new()),
        };
        let up = wait_for(Duration::from_secs(30), || {
            c.sock.exists() && c.ctr(&["version"]).success()
        });
        assert!(up, "containerd did not come up:\n{}", c.log());
        c
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// `ctr -a SOCK -n NS ARGS...`, bounded.
    fn ctr(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.sock)
            .arg("--namespace")
            .arg(&self.ns)
            .args(args);
        run_bounded(cmd, &self.dir, CLIENT_TIMEOUT)
    }

    /// `ctr ... ARGS...` with a terminal of its own (ctr --tty needs one),
    /// from script(1); bounded.
    fn ctr_on_terminal(&self, args: &[String]) -> Out {
        let quote = |a: &str| format!("'{}'", a.replace('\'', r"'\''"));
        let mut line = format!(
            "ctr --address {} --namespace {}",
            quote(&self.sock.to_string_lossy()),
            quote(&self.ns)
        );
        for a in args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        let mut cmd = Command::new(require_program("script"));
        cmd.args(["--quiet", "--return", "--command", &line, "/dev/null"]);
        run_bounded(cmd, &self.dir, CLIENT_TIMEOUT)
    }

    /// The flags that make the runc shim use the runtime under test.
    fn shim_flags(&self) -> Vec<String> {
        vec![
            "--runc-binary".into(),
            runtime_bin().to_string_lossy().into_owned(),
            "--runc-root".into(),
            self.runc_root.to_string_lossy().into_owned(),
            "--fifo-dir".into(),
            self.fifo_dir.to_string_lossy().into_owned(),
        ]
    }

    /// `ctr run FLAGS... --runc-binary RUNTIME ... IMAGE ID CMD...`.
    fn run(&self, flags: &[&str], id: &str, cmd: &[&str]) -> Out {
        self.ids.lock().unwrap().push(id.to_string());
        let mut args: Vec<String> = vec!["run".into()];
        args.extend(flags.iter().map(|s| s.to_string()));
        args.extend(self.shim_flags());
        args.push(IMAGE.into());
        args.push(id.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        self.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[track_caller]
    fn import_busybox(&self) {
        let archive = busybox_oci_archive(self.rt, IMAGE, |_| {});
        self.ctr(&[
            "images",
            "import",
            "--all-platforms",
            archive.to_str().unwrap(),
        ])
        .ok();
        let images = self.ctr(&["images", "list", "--quiet"]).ok();
        assert!(images.lines().iter().any(|l| l == IMAGE), "{images:?}");
    }

    /// The runtime's state directory for container `id` (the shim's runc root).
    fn state_dir(&self, id: &str) -> PathBuf {
        self.runc_root.join(&self.ns).join(id)
    }

    /// Nothing is left of container `id`: no runtime state, no containerd
    /// container, no cgroup, no process (shim or container), no mount.
    #[track_caller]
    fn assert_gone(&self, id: &str) {
        let sd = self.state_dir(id);
        assert!(!sd.exists(), "runtime state {} is left", sd.display());
        let listed = self.ctr(&["containers", "list", "--quiet"]).ok();
        assert!(!listed.lines().iter().any(|l| l == id), "{listed:?}");
        let cg = cgroup_dirs_named(id);
        assert!(cg.is_empty(), "cgroups left for {id}: {cg:?}");
        // The shim ends right after the delete it answers: allow it a moment.
        let mut procs = Vec::new();
        let no_procs = wait_for(TIMEOUT, || {
            procs = processes_mentioning(id);
            procs.is_empty()
        });
        assert!(no_procs, "processes left for {id}: {procs:?}");
        let m = host_mounts_mentioning(id);
        assert!(m.is_empty(), "mounts left for {id}: {m:?}");
    }

    /// `ctr tasks exec --exec-id EXEC_ID ID CMD...`.
    fn exec(&self, exec_id: &str, id: &str, cmd: &[&str]) -> Out {
        let fifo = self.fifo_dir.to_string_lossy().into_owned();
        let mut args = vec![
            "tasks",
            "exec",
            "--fifo-dir",
            &fifo,
            "--exec-id",
            exec_id,
            id,
        ];
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    /// `ctr task ls` status of task `id` (RUNNING, STOPPED, ...).
    fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr(&["tasks", "list"]);
        out.stdout.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.first() == Some(&id)).then(|| f.get(2).unwrap_or(&"").to_string())
        })
    }

    /// Removes what a failed test may have left: containers' processes, the
    /// daemon and its shims, runtime state, mounts and cgroups.
    fn cleanup(&mut self) -> Vec<String> {
        kill_cgroup_members(&self.ns);
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let ended = wait_for(Duration::from_secs(5), || {
                child.try_wait().ok().flatten().is_some()
            });
            if !ended {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        // The shims name the daemon's socket on their command line.
        kill_processes_mentioning(&self.sock.to_string_lossy());
        // A killed shim leaves its socket, which containerd 1.6 names
        // /run/containerd/s/<sha256 of "<daemon socket>/<namespace>/<id>">.
        for id in self.ids.lock().unwrap().iter() {
            let key = format!("{}/{}/{id}", self.sock.display(), self.ns);
            let hex: String = Sha256::digest(key.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let _ = fs::remove_file(Path::new("/run/containerd/s").join(hex));
        }
        let ns_root = self.runc_root.join(&self.ns);
        for e in fs::read_dir(&ns_root).into_iter().flatten().flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let mut cmd = Command::new(runtime_bin());
            cmd.arg("--root")
                .arg(&ns_root)
                .args(["delete", "--force", &id]);
            run_bounded(cmd, &self.dir, Duration::from_secs(30));
        }
        unmount_under(&self.dir);
        remove_cgroup_trees(&self.ns)
    }
}

impl Drop for Containerd<'_> {
    fn drop(&mut self) {
        let problems = self.cleanup();
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("containerd cleanup: {problems:?}");
        }
    }
}

fn assert_out(out: &Out, code: i32, stdout: &str, c: &Containerd) {
    assert_eq!(
        (out.code(), out.stdout.trim()),
        (Some(code), stdout),
        "{out:?}\n--- containerd log ---\n{}",
        tail(&c.log())
    );
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn ctr_run_output_and_exit_codes() {
    let rt = Runtime::new("ctr-run");
    let c = Containerd::start(&rt);
    c.import_busybox();

    let id = unique("ctr-echo");
    let out = c.run(&["--rm"], &id, &["echo", "hello"]);
    assert_out(&out, 0, "hello", &c);
    c.assert_gone(&id);

    let id = unique("ctr-exit");
    let out = c.run(&["--rm"], &id, &["sh", "-c", "echo out; exit 7"]);
    assert_out(&out, 7, "out", &c);
    c.assert_gone(&id);

    // The shim reports why create failed from the runtime's --log JSON.
    let id = unique("ctr-bad");
    let out = c.run(&["--rm"], &id, &["/nonexistent"]);
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr.contains("/nonexistent"),
        "the runtime's error should reach ctr: {out:?}"
    );
    // ctr --rm removes the container even though its task never started.
    let _ = c.ctr(&["containers", "delete", &id]);
    c.assert_gone(&id);
}

#[test]
fn ctr_run_and_exec_with_terminal() {
    let rt = Runtime::new("ctr-tty");
    let c = Containerd::start(&rt);
    c.import_busybox();
    let id = unique("ctr-tty");
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--tty".into()];
    args.extend(c.shim_flags());
    args.extend([IMAGE, &id, "sh", "-c", "tty; exit 3"].map(String::from));
    let out = c.ctr_on_terminal(&args);
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert!(out.stdout.contains("/dev/pts/"), "no terminal: {out:?}");
    c.assert_gone(&id);

    // A terminal for an exec'd process (the shim's console socket).
    let id = unique("ctr-tty-exec");
    c.run(&["--detach"], &id, &["sh", "-c", UNTIL_TERM]).ok();
    let fifo = c.fifo_dir.to_string_lossy().into_owned();
    let args = [
        "tasks",
        "exec",
        "--tty",
        "--fifo-dir",
        &fifo,
        "--exec-id",
        "t",
        &id,
        "sh",
        "-c",
        "tty; exit 4",
    ]
    .map(String::from);
    let out = c.ctr_on_terminal(&args);
    assert_eq!(out.code(), Some(4), "{out:?}");
    assert!(out.stdout.contains("/dev/pts/"), "no terminal: {out:?}");
    c.ctr(&["tasks", "kill", "--signal", "SIGKILL", &id]).ok();
    let stopped = wait_for(TIMEOUT, || c.task_status(&id).as_deref() == Some("STOPPED"));
    assert!(stopped, "task never stopped");
    c.ctr(&["tasks", "delete", &id]).ok();
    c.ctr(&["containers", "delete", &id]).ok();
    c.assert_gone(&id);
}

#[test]
fn ctr_detached_task_exec_kill_delete() {
    let rt = Runtime::new("ctr-task");
    let c = Containerd::start(&rt);
    c.import_busybox();
    let id = unique("ctr-task");
    c.run(&["--detach"], &id, &["sh", "-c", UNTIL_TERM]).ok();
    assert_eq!(c.task_status(&id).as_deref(), Some("RUNNING"));
    assert!(c.state_dir(&id).is_dir(), "runtime state missing");

    let out = c.exec("x", &id, &["echo", "hi"]);
    assert_out(&out, 0, "hi", &c);
    let out = c.exec("y", &id, &["sh", "-c", "exit 3"]);
    assert_out(&out, 3, "", &c);
    // The exec'd process is in the container's namespaces: it sees its init as PID 1.
    let out = c.exec("z", &id, &["cat", "/proc/1/cmdline"]);
    assert!(out.success() && out.stdout.starts_with("sh\0-c"), "{out:?}");
    let ps = c.ctr(&["tasks", "ps", &id]).ok();
    assert!(ps.lines().len() >= 2, "task ps lists no process: {ps:?}");

    c.ctr(&["tasks", "kill", "--signal", "SIGKILL", &id]).ok();
    let mut last = None;
    let stopped = wait_for(TIMEOUT, || {
        last = c.task_status(&id);
        last.as_deref() == Some("STOPPED")
    });
    assert!(stopped, "task never stopped (last: {last:?})");
    c.ctr(&["tasks", "delete", &id]).ok();
    c.ctr(&["containers", "delete", &id]).ok();
    c.assert_gone(&id);
    assert!(c.ctr(&["tasks", "list", "--quiet"]).ok().lines().is_empty());
}

/// A container left running when the test ends is removed by the guard.
#[test]
fn ctr_guard_removes_leftovers() {
    let rt = Runtime::new("ctr-guard");
    let (id, ns_cgroup, state_dir, dir) = {
        let c = Containerd::start(&rt);
        c.import_busybox();
        let id = unique("ctr-left");
        c.run(&["--detach"], &id, &["sh", "-c", UNTIL_TERM]).ok();
        assert!(!cgroup_dirs_named(&id).is_empty());
        let state_dir = c.state_dir(&id);
        (id, c.ns.clone(), state_dir, c.dir.clone())
    };
    let procs = processes_mentioning(&id);
    assert!(procs.is_empty(), "processes left for {id}: {procs:?}");
    let cg = cgroup_dirs_named(&ns_cgroup);
    assert!(cg.is_empty(), "cgroups left: {cg:?}");
    assert!(!state_dir.exists(), "runtime state left");
    let m = mounts_under(&dir);
    assert!(m.is_empty(), "mounts left under {}: {m:?}", dir.display());
}
