//! `linux.seccomp`: errno rules, argument conditions, deny-by-default with
//! an allow-list, the killing actions, the default profile `pea spec`
//! writes, exec'd processes, validation, and the notify listener.

mod common;

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Instant;

use common::{Bundle, Runtime, TIMEOUT};
use serde_json::{Value, json};

/// A bundle whose /tmp is a writable tmpfs (the root is read-only), so a
/// failing mkdir there is the filter's doing.
fn bundle_with_tmp(rt: &Runtime) -> Bundle {
    let mut b = rt.bundle();
    b.mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"]);
    b
}

fn set_seccomp(b: &mut Bundle, seccomp: Value) {
    b.config["linux"]["seccomp"] = seccomp;
}

/// The `linux.seccomp` object `pea spec` writes.
fn spec_profile(rt: &Runtime) -> Value {
    let dir = rt.host_dir("spec");
    rt.cmd(&["spec", "--bundle", dir.to_str().unwrap()]).ok();
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let profile = cfg["linux"]["seccomp"].clone();
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO", "{profile}");
    assert_eq!(profile["defaultErrnoRet"], 1, "{profile}");
    profile
}

#[test]
fn errno_ret_makes_mkdir_fail_with_that_errno() {
    let rt = Runtime::new("sc-errno");
    let mut b = bundle_with_tmp(&rt);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }),
    );
    b.sh("mkdir /tmp/x 2>&1; echo rc=$?; touch /tmp/y && echo touched; grep '^Seccomp:' /proc/self/status");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert!(out.stdout.contains("Permission denied"), "{out:?}");
    let lines = out.lines();
    assert!(lines.contains(&"rc=1".to_string()), "{out:?}");
    assert!(lines.contains(&"touched".to_string()), "{out:?}");
    assert!(lines.contains(&"Seccomp:\t2".to_string()), "{out:?}");

    // Control: without the filter the same mkdir works.
    let mut b = bundle_with_tmp(&rt);
    b.sh("mkdir /tmp/x && echo made; grep '^Seccomp:' /proc/self/status");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["made", "Seccomp:\t0"], "{out:?}");
}

#[test]
fn argument_conditions_block_only_matching_calls() {
    let rt = Runtime::new("sc-args");
    let mut b = rt.bundle();
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                // kill(pid, SIGUSR1) only.
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
                // personality(PER_LINUX32) only: `linux32` fails, `linux64` works.
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                 "args": [{"index": 0, "value": 0xffff, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        }),
    );
    b.sh("trap 'echo got-usr2' USR2; kill -USR2 $$; \
          if kill -USR1 $$ 2>/dev/null; then echo usr1-sent; else echo usr1-blocked; fi; \
          linux64 true && echo linux64-ok; linux32 true 2>/dev/null || echo linux32-blocked");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        ["got-usr2", "usr1-blocked", "linux64-ok", "linux32-blocked"],
        "{out:?}"
    );
}

/// The default profile's unconditional allow-list (from `pea spec`) minus
/// mkdir and mkdirat, on a deny-by-default filter.
fn allow_list_without_mkdir(rt: &Runtime) -> Vec<Value> {
    let profile = spec_profile(rt);
    profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == "SCMP_ACT_ALLOW" && s.get("args").is_none())
        .flat_map(|s| s["names"].as_array().unwrap().clone())
        .filter(|n| n != "mkdir" && n != "mkdirat")
        // The shell forks (conditional in the profile).
        .chain([json!("clone")])
        .collect()
}

#[test]
fn default_errno_with_an_allow_list() {
    let rt = Runtime::new("sc-allowlist");
    let allowed = allow_list_without_mkdir(&rt);
    // Both load points: late (noNewPrivileges) and before the capability
    // drop (without it, the runtime's own capset/setgroups pass the filter).
    for nnp in [true, false] {
        let mut b = bundle_with_tmp(&rt);
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.user(65534, 65534);
        set_seccomp(
            &mut b,
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
            }),
        );
        b.sh("echo hello; id -u; mkdir /tmp/x 2>&1; echo rc=$?");
        let id = rt.id();
        let out = rt.run(&b, &id).ok();
        let lines = out.lines();
        assert_eq!(lines[0], "hello", "nnp={nnp}: {out:?}");
        assert_eq!(lines[1], "65534", "nnp={nnp}: {out:?}");
        assert!(
            out.stdout.contains("Operation not permitted"),
            "nnp={nnp}: {out:?}"
        );
        assert_eq!(lines.last().unwrap(), "rc=1", "nnp={nnp}: {out:?}");
    }
}

#[test]
fn killing_actions_end_the_process_with_sigsys() {
    let rt = Runtime::new("sc-kill");
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
    ] {
        let mut b = bundle_with_tmp(&rt);
        set_seccomp(
            &mut b,
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]
            }),
        );
        b.args(&["mkdir", "/tmp/x"]);
        let id = rt.id();
        // 128 + SIGSYS (31), the shell's convention.
        rt.run(&b, &id).code_is(159);
        rt.assert_gone(&id);
    }
}

#[test]
fn flags_and_the_log_action_are_accepted() {
    let rt = Runtime::new("sc-flags");
    let mut b = rt.bundle();
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                      "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_LOG"}]
        }),
    );
    b.sh("uname -s");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["Linux"], "{out:?}");
}

#[test]
fn pea_spec_profile_locks_the_container_down() {
    let rt = Runtime::new("sc-default");
    let profile = spec_profile(&rt);
    // Capabilities that would let the kernel allow all of these: what stops
    // them here is the filter (made for `pea spec`'s capabilities).
    let script = "echo ok; ls / >/dev/null && echo ls-ok; \
        unshare -U true 2>/dev/null && echo userns-made || echo userns-blocked; \
        unshare -n true 2>/dev/null && echo netns-made || echo netns-blocked; \
        mount -t tmpfs tmpfs /tmp 2>/dev/null && echo mounted || echo mount-blocked; \
        chroot / true 2>/dev/null && echo chrooted || echo chroot-blocked; \
        grep '^Seccomp:' /proc/self/status";
    let mut b = rt.bundle();
    b.add_caps(&["CAP_SYS_ADMIN", "CAP_SYS_CHROOT"]);
    set_seccomp(&mut b, profile);
    b.sh(script);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            "ok",
            "ls-ok",
            "userns-blocked",
            "netns-blocked",
            "mount-blocked",
            "chroot-blocked",
            "Seccomp:\t2"
        ],
        "{out:?}"
    );
    rt.assert_gone(&id);

    // Control: the kernel alone allows an unprivileged user namespace.
    let mut b = rt.bundle();
    b.sh("unshare -U true && echo userns-made");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["userns-made"], "{out:?}");
}

#[test]
fn pea_spec_config_runs_a_shell() {
    let rt = Runtime::new("sc-spec-run");
    let mut b = rt.bundle();
    let dir = b.path().to_path_buf();
    std::fs::remove_file(dir.join("config.json")).ok();
    rt.cmd(&["spec", "--bundle", b.path_str()]).ok();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["process"]["terminal"] = json!(false);
    cfg["process"]["args"] = json!([
        "sh",
        "-c",
        "echo ok; ls / | grep -c . >/dev/null && echo listed; cat /proc/self/status | grep Seccomp_filters"
    ]);
    b.config = cfg;
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        ["ok", "listed", "Seccomp_filters:\t1"],
        "{out:?}"
    );
    rt.assert_gone(&id);
}

#[test]
fn exec_processes_get_the_filter() {
    let rt = Runtime::new("sc-exec");
    let mut b = bundle_with_tmp(&rt);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }),
    );
    b.long_running();
    let (id, _) = rt.start_container(&b);
    let out = rt.exec(&[
        &id,
        "sh",
        "-c",
        "mkdir /tmp/e 2>&1; grep '^Seccomp:' /proc/self/status",
    ]);
    assert!(out.stdout.contains("Permission denied"), "{out:?}");
    assert!(out.stdout.contains("Seccomp:\t2"), "{out:?}");
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let rt = Runtime::new("sc-unknown-sys");
    let mut b = bundle_with_tmp(&rt);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["pea_no_such_syscall", "mkdir", "mkdirat"],
                          "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }),
    );
    b.sh("mkdir /tmp/x 2>&1; echo rc=$?");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert!(out.stdout.contains("Permission denied"), "{out:?}");
}

#[test]
fn invalid_seccomp_is_one_clear_error_and_leaves_nothing() {
    let rt = Runtime::new("sc-invalid");
    let rule = |extra: Value| {
        let mut r = json!({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [rule(json!({"action": "SCMP_ACT_FOO"}))]}),
            "linux.seccomp.syscalls[0].action",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOPE"}),
            "linux.seccomp.defaultAction",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [rule(json!({"args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}))]}),
            "linux.seccomp.syscalls[0].args[0].op",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
            "linux.seccomp.architectures[0]",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}),
            "linux.seccomp.flags[0]",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [rule(json!({"action": "SCMP_ACT_KILL", "errnoRet": 5}))]}),
            "linux.seccomp.syscalls[0].errnoRet",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [rule(json!({"args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}))]}),
            "linux.seccomp.syscalls[0].args[0].index",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [rule(json!({"action": "SCMP_ACT_NOTIFY"}))]}),
            "linux.seccomp.listenerPath",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/nonexistent/agent.sock",
                   "syscalls": [rule(json!({"action": "SCMP_ACT_NOTIFY"}))]}),
            "linux.seccomp.listenerPath",
        ),
    ];
    for (seccomp, field) in cases {
        let mut b = rt.bundle();
        set_seccomp(&mut b, seccomp.clone());
        b.sh("echo should-not-run");
        let id = rt.id();
        let out = rt.create(&b, &id).failed().mentions_any(&[field]);
        assert!(!out.stdout.contains("should-not-run"), "{out:?}");
        rt.assert_gone(&id);
    }
}

/// Waits (bounded) for `fd` to be readable.
fn wait_readable(fd: RawFd, what: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, 100) };
        if n > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// Accepts one connection and reads the message and descriptor a runtime
/// sends there (as a seccomp agent does).
fn receive_state(listener: &UnixListener) -> (Value, OwnedFd) {
    wait_readable(listener.as_raw_fd(), "the runtime to connect");
    let (conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut data = Vec::new();
    let mut fd = None;
    loop {
        let mut buf = vec![0u8; 64 * 1024];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .unwrap();
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: the kernel just installed this descriptor for us.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    assert!(fd.replace(owned).is_none(), "more than one descriptor");
                }
            }
        }
        let n = msg.bytes;
        if n == 0 {
            break; // the runtime closed the connection: message complete
        }
        data.extend_from_slice(&buf[..n]);
    }
    let state: Value = serde_json::from_slice(&data)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&data)));
    (state, fd.expect("no descriptor came with the state"))
}

/// Answers one notification on `fd` with `-errno`; returns the syscall name.
fn answer_one(fd: &OwnedFd, errno: i32) -> String {
    wait_readable(fd.as_raw_fd(), "a seccomp notification");
    let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()).unwrap();
    let name = req.data.syscall.get_name().unwrap();
    libseccomp::ScmpNotifResp::new_error(req.id, -errno, libseccomp::ScmpNotifRespFlags::empty())
        .respond(fd.as_raw_fd())
        .unwrap();
    name
}

#[test]
fn notify_sends_the_listener_fd_and_state_to_the_agent() {
    let rt = Runtime::new("sc-notify");
    let dir = rt.host_dir("agent");
    let sock = dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut b = bundle_with_tmp(&rt);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "pea-test-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    b.sh("mkdir /tmp/x 2>&1; echo rc=$?; touch /tmp/y && echo touched");
    b.save();
    let id = rt.id();
    let run = rt.spawn(&["run", "--bundle", b.path_str(), &id]);
    let (state, fd) = receive_state(&listener);
    assert_eq!(state["fds"], json!(["seccompFd"]), "{state}");
    assert_eq!(state["metadata"], "pea-test-metadata", "{state}");
    assert!(state["ociVersion"].as_str().is_some(), "{state}");
    let pid = state["pid"].as_i64().expect("pid");
    assert!(pid > 0, "{state}");
    assert_eq!(state["state"]["id"], json!(id), "{state}");
    assert_eq!(state["state"]["status"], "creating", "{state}");
    assert_eq!(state["state"]["pid"], json!(pid), "{state}");
    assert_eq!(
        state["state"]["bundle"].as_str(),
        Some(b.path().canonicalize().unwrap().to_str().unwrap()),
        "{state}"
    );
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
    assert_eq!(link.to_string_lossy(), "anon_inode:seccomp notify");
    // The container's mkdir waits for us; say "cross-device".
    let name = answer_one(&fd, libc::EXDEV);
    assert!(name == "mkdir" || name == "mkdirat", "{name}");
    let out = run.wait().ok();
    assert!(out.stdout.contains("Invalid cross-device link"), "{out:?}");
    let lines = out.lines();
    assert!(lines.contains(&"rc=1".to_string()), "{out:?}");
    assert!(lines.contains(&"touched".to_string()), "{out:?}");
    rt.assert_gone(&id);
}

#[test]
fn notify_for_exec_sends_the_running_state() {
    let rt = Runtime::new("sc-notify-exec");
    let dir = rt.host_dir("agent");
    let sock = dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut b = bundle_with_tmp(&rt);
    set_seccomp(
        &mut b,
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        }),
    );
    b.long_running();
    b.save();
    let id = rt.id();
    let create = rt.spawn(&["create", "--bundle", b.path_str(), &id]);
    let (state, _init_fd) = receive_state(&listener);
    assert_eq!(state["state"]["status"], "creating", "{state}");
    assert!(state.get("metadata").is_none(), "{state}");
    create.wait().ok();
    rt.start(&id).ok();
    let init_pid = rt.state(&id)["pid"].as_i64().unwrap();
    let exec = rt.spawn(&["exec", &id, "sh", "-c", "mkdir /tmp/e 2>&1; echo rc=$?"]);
    let (state, fd) = receive_state(&listener);
    assert_eq!(state["state"]["status"], "running", "{state}");
    assert_eq!(state["state"]["pid"], json!(init_pid), "{state}");
    assert_ne!(state["pid"], json!(init_pid), "{state}");
    answer_one(&fd, libc::EROFS);
    let out = exec.wait().ok();
    assert!(out.stdout.contains("Read-only file system"), "{out:?}");
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
}
