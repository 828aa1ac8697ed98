//! The `org.peapod.init` annotation: the runtime's own reaper runs as the
//! container's PID 1, forks the user's process, forwards signals to it,
//! reaps zombies and exits with the process's status.

mod common;

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use common::{Bundle, Runtime, proc_alive, wait_file_contains};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use serde_json::Value;

const INIT: &str = "org.peapod.init";

fn with_init(rt: &Runtime) -> Bundle {
    let mut b = rt.bundle();
    b.annotation(INIT, "true");
    b
}

#[test]
fn pid1_is_the_reaper_and_the_command_is_its_child() {
    let rt = Runtime::new("init-pid1");
    let mut b = with_init(&rt);
    // `; true`: the shell must not exec ps in its place.
    b.sh("echo comm=$(cat /proc/1/comm); echo self=$$; ps -o pid,ppid,comm; true");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    let lines = out.lines();
    assert!(lines.contains(&"comm=peapod-init".to_string()), "{out:?}");
    assert!(lines.contains(&"self=2".to_string()), "{out:?}");
    let ps: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        ps.iter().any(|f| f[..] == ["1", "0", "peapod-init"]),
        "ps shows no reaper as pid 1: {out:?}"
    );
    assert!(
        ps.iter().any(|f| f[..] == ["2", "1", "sh"]),
        "ps shows no sh as pid 2 (child of 1): {out:?}"
    );
    rt.assert_gone(&id);
}

#[test]
fn without_the_annotation_the_command_is_pid1() {
    for value in [None, Some("false")] {
        let rt = Runtime::new("init-off");
        let mut b = rt.bundle();
        if let Some(v) = value {
            b.annotation(INIT, v);
        }
        b.sh("echo self=$$; echo comm=$(cat /proc/1/comm)");
        let id = rt.id();
        let out = rt.run(&b, &id).ok();
        assert_eq!(out.lines(), ["self=1", "comm=sh"], "{out:?}");
    }
}

#[test]
fn invalid_annotation_value_is_refused() {
    let rt = Runtime::new("init-invalid");
    let mut b = rt.bundle();
    b.annotation(INIT, "maybe").sh("exit 0");
    let id = rt.id();
    rt.create(&b, &id).failed().mentions_any(&[INIT]);
    rt.assert_gone(&id);
}

#[test]
fn exit_code_passes_through() {
    let rt = Runtime::new("init-exit");
    let mut b = with_init(&rt);
    b.sh("exit 7");
    let id = rt.id();
    rt.run(&b, &id).code_is(7);
    rt.assert_gone(&id);
}

#[test]
fn killed_command_exits_128_plus_signal() {
    let rt = Runtime::new("init-sigkill");
    let mut b = with_init(&rt);
    b.sh("kill -KILL $$");
    let id = rt.id();
    rt.run(&b, &id).code_is(137);
    rt.assert_gone(&id);
}

#[test]
fn orphaned_zombies_are_reaped() {
    let rt = Runtime::new("init-zombie");
    let mut b = with_init(&rt);
    // The subshell exits at once, so `sleep` is orphaned: reparented to pid
    // 1, which alone can reap it after it ends.
    b.sh(
        "(sleep 0.3 & echo $! > /dev/shm/orphan); o=$(cat /dev/shm/orphan); \
          echo ppid=$(cut -d' ' -f4 /proc/$o/stat); \
          sleep 1; [ -e /proc/$o ] && echo orphan-left $(cut -d' ' -f3 /proc/$o/stat); \
          echo zombies=$(grep -l ') Z ' /proc/[0-9]*/stat 2>/dev/null | wc -l)",
    );
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["ppid=1", "zombies=0"], "{out:?}");
}

#[test]
fn kill_is_forwarded_to_the_command() {
    let rt = Runtime::new("init-term");
    let out = rt.host_dir("out");
    let mut b = with_init(&rt);
    b.bind(&out, "/out", false)
        .sh("trap 'exit 42' TERM; echo up > /out/up; sleep 100000 & wait");
    b.save();
    let id = rt.id();
    let run = rt.spawn(&["run", "--bundle", b.path_str(), &id]);
    wait_file_contains(&out.join("up"), "up");
    rt.kill(&id, "TERM").ok();
    run.wait().code_is(42);
    rt.assert_gone(&id);
}

#[test]
fn detached_container_kill_and_state() {
    let rt = Runtime::new("init-detached");
    let out = rt.host_dir("out");
    let mut b = with_init(&rt);
    b.bind(&out, "/out", false).sh(
        "trap 'echo got-usr1 >> /out/sig' USR1; trap 'echo got-term >> /out/sig; exit 0' TERM; \
             echo $$ > /out/pid; while :; do sleep 100000 & wait; done",
    );
    let (id, pid) = rt.start_container(&b);
    wait_file_contains(&out.join("pid"), "2");
    // The state's pid is the reaper, named so on the host too.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "peapod-init");
    // The reaper holds nothing but stdio (the start connection is closed).
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    assert_eq!(fds, [0, 1, 2]);
    let st: Value = rt.state(&id);
    assert_eq!(st["status"], "running", "{st}");
    rt.kill(&id, "USR1").ok();
    wait_file_contains(&out.join("sig"), "got-usr1");
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    wait_file_contains(&out.join("sig"), "got-term");
    assert!(common::wait_for(common::TIMEOUT, || !proc_alive(pid)));
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn shared_pid_namespace_still_works() {
    let rt = Runtime::new("init-nopidns");
    let mut b = with_init(&rt);
    b.remove_namespace("pid").sh("exit 3");
    let id = rt.id();
    rt.run(&b, &id).code_is(3);
    rt.assert_gone(&id);
}

/// An exec that fails after `start` (the file is there and executable but
/// not a program) is reported by `start` as without the annotation.
#[test]
fn exec_error_is_reported_by_start() {
    for init in [false, true] {
        let rt = Runtime::new("init-execerr");
        let mut b = rt.bundle();
        if init {
            b.annotation(INIT, "true");
        }
        b.write_file("/bin/not-a-program", "\x7fELF garbage");
        b.args(&["/bin/not-a-program"]);
        let id = rt.id();
        rt.create(&b, &id).ok();
        rt.start(&id)
            .failed()
            .mentions_any(&["/bin/not-a-program"])
            .mentions_any(&["exec format error"]);
        rt.wait_status(&id, "stopped");
        rt.delete(&id).ok();
        rt.assert_gone(&id);

        let id = rt.id();
        rt.run(&b, &id)
            .failed()
            .mentions_any(&["/bin/not-a-program"]);
        rt.assert_gone(&id);
    }
}

#[test]
fn missing_program_fails_as_without_the_annotation() {
    let rt = Runtime::new("init-missing");
    let mut b = with_init(&rt);
    b.args(&["/nonexistent"]);
    let id = rt.id();
    rt.run(&b, &id).failed().mentions_any(&["/nonexistent"]);
    rt.assert_gone(&id);
}

#[test]
fn user_process_keeps_its_restrictions() {
    let rt = Runtime::new("init-restrict");
    let mut b = with_init(&rt);
    b.sh("for p in self 1; do grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/$p/status | tr -d '\\t' | sed \"s/^/$p:/\"; done");
    b.config["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mknodat"], "action": "SCMP_ACT_ERRNO"}]
    });
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    let lines = out.lines();
    for p in ["self", "1"] {
        for want in [
            "CapEff:0000000020000420",
            "CapBnd:0000000020000420",
            "NoNewPrivs:1",
            "Seccomp:2",
        ] {
            assert!(
                lines.contains(&format!("{p}:{want}")),
                "{p} lacks {want}: {out:?}"
            );
        }
    }
}

/// With a terminal the command leads the terminal's foreground process
/// group (keys such as ^C reach it, not the reaper).
#[test]
fn terminal_foreground_group_is_the_commands() {
    let rt = Runtime::new("init-tty");
    let out = rt.host_dir("out");
    let sock = rt.host_dir("console").join("sock");
    let listener = UnixListener::bind(&sock).expect("bind console socket");
    let mut b = with_init(&rt);
    b.terminal(true).bind(&out, "/out", false).sh(
        "echo self=$(cut -d' ' -f5,8 /proc/self/stat) init=$(cut -d' ' -f5 /proc/1/stat) > /out/pg",
    );
    b.save();
    let id = rt.id();
    let create = rt.spawn(&[
        "create",
        "--bundle",
        b.path_str(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let master = receive_master(&listener);
    create.wait().ok();
    rt.start(&id).ok();
    let pg = wait_file_contains(&out.join("pg"), "init=");
    // The command (pid 2) is its own process group and the foreground one.
    assert_eq!(pg.trim(), "self=2 2 init=1", "{pg:?}");
    rt.wait_status(&id, "stopped");
    drop(master);
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

/// Accepts one connection and receives the pty master it carries.
fn receive_master(l: &UnixListener) -> OwnedFd {
    let (stream, _) = l.accept().expect("accept on the console socket");
    stream.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg on the console socket");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd was just received and is owned by nobody else.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("console socket message carried no descriptor");
}

/// Socket activation under the reaper: the descriptor reaches the command
/// and LISTEN_PID names the command (pid 2), not the reaper.
#[test]
fn listen_fds_reach_the_command() {
    use std::os::unix::process::CommandExt;
    let rt = Runtime::new("init-listen");
    let sock = rt.host_dir("sock").join("activation.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let high = nix::fcntl::fcntl(&listener, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100)).unwrap();
    // SAFETY: a fresh descriptor nothing else owns.
    let high = unsafe { OwnedFd::from_raw_fd(high) };
    let mut b = with_init(&rt);
    b.sh("echo \"$LISTEN_FDS $LISTEN_PID $$\"; readlink /proc/self/fd/3");
    b.save();
    let id = rt.id();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ exec env LISTEN_FDS=1 \"$0\" \"$@\"",
        common::runtime_bin().to_str().unwrap(),
        "--root",
        rt.root().to_str().unwrap(),
        "run",
        "--bundle",
        b.path_str(),
        &id,
    ])
    .stdin(std::process::Stdio::null());
    // SAFETY: only dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(high.as_raw_fd(), 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run pea");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"1 2 2"), "{stdout}");
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("socket:[")),
        "{stdout}"
    );
    rt.assert_gone(&id);
}
