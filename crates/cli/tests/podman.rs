//! Podman 4.3 drives the runtime under test (`podman --runtime <runtime>`,
//! through conmon): output and exit codes (126/127 for commands that cannot
//! run), exec into a detached container, stop/start/kill, terminals, a
//! `--read-only` container (tmpfs mounts with runc's `tmpcopyup`), and a pod
//! whose containers share the pod's network namespace.
//!
//! Each test gives Podman storage, run and temp dirs of its own under the
//! test dir, a containers.conf of its own (cgroupfs, file events, no default
//! ulimits: root here cannot raise rlimits above the current hard limit) and
//! runs every container with `--network none` under a cgroup parent of its
//! own. A Drop guard removes containers, pods, storage, conmon processes,
//! mounts and cgroups, even when the test fails.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::clients::{
    CLIENT_TIMEOUT, busybox_oci_archive, kill_cgroup_members, kill_processes_mentioning,
    pids_mentioning, remove_cgroup_trees, require_program, run_bounded, runtime_default_root,
    unique, unmount_under,
};
use common::{
    Out, Runtime, TIMEOUT, UNTIL_TERM, cgroup_dirs_named, host_mounts_mentioning, ns_link,
    processes_mentioning, runtime_bin, wait_for,
};

const IMAGE: &str = "localhost/pea-busybox:latest";

/// Podman with storage and configuration of its own.
struct Podman<'a> {
    rt: &'a Runtime,
    dir: PathBuf,
    /// Name of the cgroup parent (`/<name>`) of every container and pod.
    cgroup_parent: String,
}

impl<'a> Podman<'a> {
    fn new(rt: &'a Runtime) -> Self {
        require_program("podman");
        require_program("conmon");
        // The pause process of a pod's infra container.
        require_program("catatonit");
        let dir = rt.host_dir("podman");
        let p = Podman {
            rt,
            dir,
            cgroup_parent: unique("pea-podman"),
        };
        fs::write(
            p.dir.join("containers.conf"),
            format!(
                r#"[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
tmp_dir = "{tmp}"
lock_type = "file"
runtime_supports_json = ["crun", "runc", "kata", "pea"]

[network]
network_config_dir = "{net}"
"#,
                events = p.dir.join("events.log").display(),
                tmp = p.path("tmp"),
                net = p.path("net"),
            ),
        )
        .unwrap();
        fs::write(
            p.dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                p.path("root"),
                p.path("runroot")
            ),
        )
        .unwrap();
        p
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// `podman GLOBAL-FLAGS ARGS...` (bounded): this test's storage, the
    /// runtime under test, cgroupfs.
    fn podman(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .env_remove("CONTAINER_HOST")
            .env_remove("CONTAINER_CONNECTION")
            .args(["--root", &self.path("root")])
            .args(["--runroot", &self.path("runroot")])
            .args(["--tmpdir", &self.path("tmp")])
            .args(["--storage-driver", "overlay"])
            .arg("--runtime")
            .arg(runtime_bin())
            .args(["--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file"])
            .args(args);
        run_bounded(cmd, &self.dir, CLIENT_TIMEOUT)
    }

    /// The flags every container outside a pod gets.
    fn own(&self) -> Vec<String> {
        vec![
            "--network".into(),
            "none".into(),
            "--cgroup-parent".into(),
            format!("/{}", self.cgroup_parent),
        ]
    }

    /// `podman run --network none --cgroup-parent P FLAGS... IMAGE CMD...`.
    fn run(&self, flags: &[&str], cmd: &[&str]) -> Out {
        let mut args: Vec<String> = vec!["run".into()];
        args.extend(self.own());
        args.extend(flags.iter().map(|s| s.to_string()));
        args.push(IMAGE.into());
        args.extend(cmd.iter().map(|s| s.to_string()));
        self.podman(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// `podman run --rm --cidfile F FLAGS... IMAGE CMD...`: the result and the container id.
    fn run_rm(&self, flags: &[&str], cmd: &[&str]) -> (Out, String) {
        let cidfile = self.dir.join(format!("{}.cid", unique("cid")));
        let cid_arg = cidfile.to_string_lossy().into_owned();
        let mut all = vec!["--rm", "--cidfile", &cid_arg];
        all.extend_from_slice(flags);
        let out = self.run(&all, cmd);
        let cid = fs::read_to_string(&cidfile).unwrap_or_default();
        assert!(!cid.trim().is_empty(), "no container id written: {out:?}");
        (out, cid.trim().to_string())
    }

    /// Loads the busybox image from an OCI archive; `customize` may add files.
    #[track_caller]
    fn load_busybox(&self, customize: impl FnOnce(&Path)) {
        let archive = busybox_oci_archive(self.rt, IMAGE, customize);
        self.podman(&["load", "--input", archive.to_str().unwrap()])
            .ok();
        self.podman(&["image", "exists", IMAGE]).ok();
    }

    /// `podman inspect --format FORMAT NAME`, trimmed.
    #[track_caller]
    fn inspect(&self, name: &str, format: &str) -> String {
        self.podman(&["inspect", "--format", format, name])
            .ok()
            .stdout
            .trim()
            .to_string()
    }

    /// Nothing is left of container `cid`: Podman does not know it, and there
    /// is no runtime state, cgroup, process (conmon or container) or mount.
    #[track_caller]
    fn assert_gone(&self, cid: &str) {
        let all = self.podman(&["ps", "--all", "--quiet", "--no-trunc"]).ok();
        assert!(
            !all.stdout.contains(cid),
            "podman still lists {cid}: {all:?}"
        );
        let sd = runtime_default_root().join(cid);
        let mut procs = Vec::new();
        // conmon ends (and podman's cleanup runs) just after the container.
        let gone = wait_for(TIMEOUT, || {
            procs = processes_mentioning(cid);
            procs.is_empty() && !sd.exists()
        });
        assert!(gone, "processes left for {cid}: {procs:?}");
        assert!(!sd.exists(), "runtime state {} is left", sd.display());
        let cg = cgroup_dirs_named(&format!("libpod-{cid}"));
        assert!(cg.is_empty(), "cgroups left for {cid}: {cg:?}");
        let m = host_mounts_mentioning(cid);
        assert!(m.is_empty(), "mounts left for {cid}: {m:?}");
    }

    /// Removes what a failed test may have left: containers and pods,
    /// Podman's storage, conmon processes, runtime state, mounts, cgroups.
    fn cleanup(&mut self) -> Vec<String> {
        let ids: Vec<String> = self
            .podman(&["ps", "--all", "--quiet", "--no-trunc"])
            .stdout
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        self.podman(&["pod", "rm", "--all", "--force", "--time", "0"]);
        self.podman(&["rm", "--all", "--force", "--time", "0"]);
        // conmon runs `podman container cleanup` when a container ends: let
        // it finish before the storage goes away.
        let dir = self.dir.to_string_lossy().into_owned();
        wait_for(Duration::from_secs(15), || pids_mentioning(&dir).is_empty());
        self.podman(&["system", "reset", "--force"]);
        kill_cgroup_members(&self.cgroup_parent);
        kill_processes_mentioning(&dir);
        let root = runtime_default_root();
        for id in &ids {
            if root.join(id).exists() {
                let mut cmd = Command::new(runtime_bin());
                cmd.args(["delete", "--force", id]);
                run_bounded(cmd, &self.dir, Duration::from_secs(30));
            }
        }
        unmount_under(&self.dir);
        remove_cgroup_trees(&self.cgroup_parent)
    }
}

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        let problems = self.cleanup();
        if !problems.is_empty() && !std::thread::panicking() {
            panic!("podman cleanup: {problems:?}");
        }
    }
}

#[track_caller]
fn assert_out(out: &Out, code: i32, stdout: &str) {
    assert_eq!(
        (out.code(), out.stdout.trim()),
        (Some(code), stdout),
        "{out:?}"
    );
}

#[test]
fn podman_run_output_and_exit_codes() {
    let rt = Runtime::new("podman-run");
    let p = Podman::new(&rt);
    p.load_busybox(|_| {});

    let (out, cid) = p.run_rm(&[], &["echo", "hello"]);
    assert_out(&out, 0, "hello");
    p.assert_gone(&cid);

    let (out, cid) = p.run_rm(&[], &["sh", "-c", "echo out; exit 5"]);
    assert_out(&out, 5, "out");
    p.assert_gone(&cid);

    // Podman maps the runtime's error (read from its --log JSON) to 127 for a
    // command that is not there and 126 for one that cannot be executed.
    let (out, cid) = p.run_rm(&[], &["/nonexistent"]);
    assert_eq!(out.code(), Some(127), "{out:?}");
    assert!(out.stderr.contains("/nonexistent"), "{out:?}");
    p.assert_gone(&cid);
    let (out, cid) = p.run_rm(&[], &["/etc/passwd"]);
    assert_eq!(out.code(), Some(126), "{out:?}");
    p.assert_gone(&cid);
}

#[test]
fn podman_exec_stop_start_kill() {
    let rt = Runtime::new("podman-exec");
    let p = Podman::new(&rt);
    p.load_busybox(|_| {});
    let name = unique("pea-exec");
    let script = format!("echo started; {UNTIL_TERM}");
    let out = p
        .run(&["--detach", "--name", &name], &["sh", "-c", &script])
        .ok();
    let cid = out.stdout.trim().to_string();
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");
    assert!(runtime_default_root().join(&cid).is_dir());

    assert_out(&p.podman(&["exec", &name, "echo", "hi"]), 0, "hi");
    assert_out(&p.podman(&["exec", &name, "sh", "-c", "exit 4"]), 4, "");
    // exec joins the container: its init is PID 1 there.
    let out = p.podman(&["exec", &name, "cat", "/proc/1/cmdline"]).ok();
    assert!(out.stdout.starts_with("sh\0-c\0echo started"), "{out:?}");
    // A terminal for the exec'd process (conmon's console socket).
    let out = p.podman(&["exec", "--tty", &name, "tty"]).ok();
    assert!(out.stdout.trim().starts_with("/dev/pts/"), "{out:?}");
    // A detached exec.
    p.podman(&[
        "exec",
        "--detach",
        &name,
        "sh",
        "-c",
        "echo detached > /tmp/d",
    ])
    .ok();
    let mut last = String::new();
    let seen = wait_for(TIMEOUT, || {
        last = p.podman(&["exec", &name, "cat", "/tmp/d"]).stdout;
        last.trim() == "detached"
    });
    assert!(seen, "the detached exec did not run: {last:?}");

    // stop: SIGTERM, which the container's shell turns into exit 0.
    p.podman(&["stop", "--time", "20", &name]).ok();
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "exited");
    assert_eq!(p.inspect(&name, "{{.State.ExitCode}}"), "0");
    let logs = p.podman(&["logs", &name]).ok();
    assert_eq!(logs.stdout.trim(), "started", "{logs:?}");
    // start again, then kill: SIGKILL, exit 137.
    p.podman(&["start", &name]).ok();
    assert_eq!(p.inspect(&name, "{{.State.Status}}"), "running");
    p.podman(&["kill", &name]).ok();
    p.podman(&["wait", &name]).ok();
    assert_eq!(p.inspect(&name, "{{.State.ExitCode}}"), "137");
    p.podman(&["rm", &name]).ok();
    p.assert_gone(&cid);
}

#[test]
fn podman_run_with_terminal() {
    let rt = Runtime::new("podman-tty");
    let p = Podman::new(&rt);
    p.load_busybox(|_| {});
    // -t without -i: podman needs no terminal of its own.
    let (out, cid) = p.run_rm(&["--tty"], &["tty"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.trim().starts_with("/dev/pts/"), "{out:?}");
    p.assert_gone(&cid);

    // -it, with podman itself on a terminal (script(1)).
    let cidfile = p.dir.join("it.cid");
    let mut line = String::from("podman");
    for a in [
        "--root",
        &p.path("root"),
        "--runroot",
        &p.path("runroot"),
        "--tmpdir",
        &p.path("tmp"),
        "--storage-driver",
        "overlay",
        "--runtime",
        &runtime_bin().to_string_lossy(),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        "run",
        "--rm",
        "--interactive",
        "--tty",
        "--cidfile",
        &cidfile.to_string_lossy(),
    ] {
        line.push(' ');
        line.push_str(a);
    }
    for a in p.own() {
        line.push(' ');
        line.push_str(&a);
    }
    // The pause lets podman's attach drain the terminal before the process
    // ends: under load, script(1) may otherwise end with the output unread.
    line.push_str(&format!(" {IMAGE} sh -c 'tty; sleep 1; exit 3'"));
    let mut cmd = Command::new(require_program("script"));
    cmd.env("CONTAINERS_CONF", p.dir.join("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", p.dir.join("storage.conf"))
        .args(["--quiet", "--return", "--command", &line, "/dev/null"]);
    let out = run_bounded(cmd, &p.dir, CLIENT_TIMEOUT);
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert!(out.stdout.contains("/dev/pts/"), "no terminal: {out:?}");
    p.assert_gone(fs::read_to_string(&cidfile).unwrap().trim());
}

#[test]
fn podman_read_only_copies_up_tmpfs_content() {
    let rt = Runtime::new("podman-ro");
    let p = Podman::new(&rt);
    // The image's /run has content: `--read-only` mounts a tmpfs on /run
    // with the `tmpcopyup` option, which must bring that content along.
    p.load_busybox(|rootfs| {
        let run = rootfs.join("run");
        fs::create_dir_all(run.join("pea-dir")).unwrap();
        fs::write(run.join("pea-marker"), "marker\n").unwrap();
        fs::write(run.join("pea-dir/f"), "nested\n").unwrap();
        fs::set_permissions(run.join("pea-dir"), fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::chown(run.join("pea-dir"), Some(1000), Some(1000)).unwrap();
        symlink("pea-marker", run.join("pea-link")).unwrap();
    });
    let script = "cat /run/pea-marker /run/pea-dir/f; readlink /run/pea-link; \
                  stat -c '%a %u:%g' /run/pea-dir; \
                  touch /run/new && echo run-writable; \
                  touch /pea-x 2>/dev/null || echo root-read-only";
    let (out, cid) = p.run_rm(&["--read-only"], &["sh", "-c", script]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(
        out.lines(),
        [
            "marker",
            "nested",
            "pea-marker",
            "750 1000:1000",
            "run-writable",
            "root-read-only"
        ],
        "{out:?}"
    );
    p.assert_gone(&cid);
}

#[test]
fn podman_pod_containers_share_network_namespace() {
    let rt = Runtime::new("podman-pod");
    let p = Podman::new(&rt);
    p.load_busybox(|_| {});
    let pod = unique("pea-pod");
    let parent = format!("/{}", p.cgroup_parent);
    p.podman(&[
        "pod",
        "create",
        "--name",
        &pod,
        "--network",
        "none",
        "--cgroup-parent",
        &parent,
    ])
    .ok();
    let a = unique("pea-pod-a");
    let out = p
        .podman(&[
            "run", "--detach", "--pod", &pod, "--name", &a, IMAGE, "sh", "-c", UNTIL_TERM,
        ])
        .ok();
    let a_id = out.stdout.trim().to_string();
    let ns_a = p
        .podman(&["exec", &a, "readlink", "/proc/self/ns/net"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let out = p
        .podman(&[
            "run",
            "--rm",
            "--pod",
            &pod,
            IMAGE,
            "readlink",
            "/proc/self/ns/net",
        ])
        .ok();
    let ns_b = out.stdout.trim().to_string();
    assert!(ns_a.starts_with("net:["), "{ns_a:?}");
    assert_eq!(
        ns_a, ns_b,
        "the pod's containers are in different network namespaces"
    );
    assert_ne!(
        ns_a,
        ns_link(None, "net"),
        "the pod shares the host's network"
    );
    // Both joined the namespace of the pod's infra container.
    let infra = p.inspect(&pod, "{{.InfraContainerID}}");
    let infra_pid: i32 = p.inspect(&infra, "{{.State.Pid}}").parse().unwrap();
    assert_eq!(ns_link(Some(infra_pid), "net"), ns_a);
    // The containers of the pod run with the runtime under test.
    assert_eq!(
        p.inspect(&a, "{{.OCIRuntime}}"),
        runtime_bin().to_string_lossy()
    );
    assert!(runtime_default_root().join(&a_id).is_dir());
    assert!(runtime_default_root().join(&infra).is_dir());

    p.podman(&["pod", "rm", "--force", "--time", "0", &pod])
        .ok();
    p.assert_gone(&a_id);
    p.assert_gone(&infra);
}

/// Containers and a pod left running when the test ends are removed by the guard.
#[test]
fn podman_guard_removes_leftovers() {
    let rt = Runtime::new("podman-guard");
    let (ids, parent, dir) = {
        let p = Podman::new(&rt);
        p.load_busybox(|_| {});
        let out = p.run(&["--detach"], &["sh", "-c", UNTIL_TERM]).ok();
        let mut ids = vec![out.stdout.trim().to_string()];
        let pod = unique("pea-pod");
        let parent = format!("/{}", p.cgroup_parent);
        p.podman(&[
            "pod",
            "create",
            "--name",
            &pod,
            "--network",
            "none",
            "--cgroup-parent",
            &parent,
        ])
        .ok();
        let out = p
            .podman(&[
                "run", "--detach", "--pod", &pod, IMAGE, "sh", "-c", UNTIL_TERM,
            ])
            .ok();
        ids.push(out.stdout.trim().to_string());
        ids.push(p.inspect(&pod, "{{.InfraContainerID}}"));
        for id in &ids {
            assert!(
                runtime_default_root().join(id).is_dir(),
                "no runtime state for {id}"
            );
        }
        (ids, p.cgroup_parent.clone(), p.dir.clone())
    };
    for id in &ids {
        let procs = processes_mentioning(id);
        assert!(procs.is_empty(), "processes left for {id}: {procs:?}");
        assert!(
            !runtime_default_root().join(id).exists(),
            "runtime state left for {id}"
        );
    }
    let procs = pids_mentioning(&dir.to_string_lossy());
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let cg = cgroup_dirs_named(&parent);
    assert!(cg.is_empty(), "cgroups left: {cg:?}");
    let m = common::mounts_under(&dir);
    assert!(m.is_empty(), "mounts left under {}: {m:?}", dir.display());
}
