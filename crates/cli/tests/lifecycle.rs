//! create / start / state / kill / delete / run / list / ps of real containers.

mod common;

use std::fs;

use common::{Runtime, TIMEOUT, proc_alive, wait_file_contains, wait_for};
use serde_json::Value;

#[test]
fn create_start_kill_delete() {
    let rt = Runtime::new("lc-basic");
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    b.bind(&out, "/out", false).sh(
        "trap 'echo bye > /out/term; exit 0' TERM; echo started > /out/log; sleep 100000 & wait",
    );
    let id = rt.id();

    rt.create(&b, &id).ok();
    let st = rt.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    let pid = st["pid"].as_i64().expect("pid") as i32;
    assert!(pid > 0, "{st}");
    assert!(
        proc_alive(pid),
        "created container's init {pid} is not alive"
    );
    assert!(
        !out.join("log").exists(),
        "the user process must not run before start"
    );

    rt.start(&id).ok();
    rt.wait_status(&id, "running");
    assert_eq!(rt.state(&id)["pid"].as_i64(), Some(pid as i64));
    wait_file_contains(&out.join("log"), "started");

    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    wait_file_contains(&out.join("term"), "bye");
    assert!(
        wait_for(TIMEOUT, || !proc_alive(pid)),
        "init {pid} still alive"
    );

    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn create_writes_pid_file() {
    let rt = Runtime::new("lc-pidfile");
    let mut b = rt.bundle();
    b.long_running();
    b.save();
    let id = rt.id();
    let pid_file = rt.host_dir("pid").join("init.pid");
    rt.cmd(&[
        "create",
        "--bundle",
        b.path_str(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ])
    .ok();
    let st = rt.state(&id);
    let written = fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(
        written.trim().parse::<i64>().ok(),
        st["pid"].as_i64(),
        "{st}"
    );
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn delete_created_container() {
    let rt = Runtime::new("lc-del-created");
    let mut b = rt.bundle();
    b.long_running();
    let id = rt.id();
    rt.create(&b, &id).ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    rt.delete(&id).ok();
    assert!(
        wait_for(TIMEOUT, || !proc_alive(pid)),
        "init {pid} survived delete"
    );
    rt.assert_gone(&id);
}

#[test]
fn state_json_has_oci_fields() {
    let rt = Runtime::new("lc-state");
    let mut b = rt.bundle();
    b.long_running()
        .annotation("org.peapod.test", "yes")
        .annotation("other", "value 2");
    let (id, pid) = rt.start_container(&b);
    let st = rt.state(&id);
    assert!(
        st["ociVersion"].as_str().is_some_and(|v| !v.is_empty()),
        "{st}"
    );
    assert_eq!(st["id"], id.as_str(), "{st}");
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64), "{st}");
    assert!(pid > 0);
    let bundle = st["bundle"].as_str().expect("bundle");
    assert_eq!(
        fs::canonicalize(bundle).unwrap(),
        fs::canonicalize(b.path()).unwrap(),
        "{st}"
    );
    assert_eq!(st["annotations"]["org.peapod.test"], "yes", "{st}");
    assert_eq!(st["annotations"]["other"], "value 2", "{st}");
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    let st = rt.state(&id);
    assert_eq!(st["status"], "stopped", "{st}");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn run_prints_process_stdout() {
    let rt = Runtime::new("lc-run-stdout");
    let mut b = rt.bundle();
    b.sh("echo hello-$((6*7)); echo to-stderr >&2");
    let id = rt.id();
    let out = rt.run(&b, &id).code_is(0);
    assert!(out.stdout.contains("hello-42"), "{out:?}");
    assert!(out.stderr.contains("to-stderr"), "{out:?}");
    rt.assert_gone(&id);
}

#[test]
fn run_propagates_exit_code() {
    let rt = Runtime::new("lc-run-exit");
    let mut b = rt.bundle();
    b.sh("exit 3");
    let id = rt.id();
    rt.run(&b, &id).code_is(3);
    rt.assert_gone(&id);
}

#[test]
fn run_killed_by_sigkill_exits_137() {
    let rt = Runtime::new("lc-run-kill");
    let mut b = rt.bundle();
    b.args(&["sleep", "100000"]);
    b.save();
    let id = rt.id();
    let run = rt.spawn(&["run", "--bundle", b.path_str(), &id]);
    rt.wait_status(&id, "running");
    rt.kill(&id, "KILL").ok();
    run.wait().code_is(137);
    rt.assert_gone(&id);
}

#[test]
fn run_detach() {
    let rt = Runtime::new("lc-run-detach");
    let mut b = rt.bundle();
    b.long_running();
    b.save();
    let id = rt.id();
    rt.cmd(&["run", "--detach", "--bundle", b.path_str(), &id])
        .ok();
    rt.wait_status(&id, "running");
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn process_exit_stops_container() {
    let rt = Runtime::new("lc-exit");
    let mut b = rt.bundle();
    b.sh("exit 0");
    let (id, pid) = rt.start_container(&b);
    rt.wait_status(&id, "stopped");
    assert!(!proc_alive(pid));
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn kill_accepts_signal_forms() {
    let rt = Runtime::new("lc-kill-forms");
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .sh("trap 'echo TERM >> /out/sig' TERM; echo up > /out/up; while :; do sleep 100000 & wait; done");
    let (id, pid) = rt.start_container(&b);
    wait_file_contains(&out.join("up"), "up");
    let forms: [&[&str]; 4] = [&["TERM"], &["SIGTERM"], &["15"], &[]];
    for (n, form) in forms.iter().enumerate() {
        let mut args = vec!["kill", id.as_str()];
        args.extend_from_slice(form);
        rt.cmd(&args).ok();
        let sig = out.join("sig");
        let ok = wait_for(TIMEOUT, || {
            fs::read_to_string(&sig).unwrap_or_default().lines().count() == n + 1
        });
        assert!(ok, "signal form {form:?} not delivered as SIGTERM");
    }
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    assert!(!proc_alive(pid));
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn kill_all_stops_container() {
    let rt = Runtime::new("lc-kill-all");
    let mut b = rt.bundle();
    b.sh("sleep 100000 & sleep 100001 & wait");
    let (id, _pid) = rt.start_container(&b);
    rt.cmd(&["kill", "--all", &id, "KILL"]).ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn list_shows_container() {
    let rt = Runtime::new("lc-list");
    let mut b = rt.bundle();
    b.long_running();
    let (id, pid) = rt.start_container(&b);

    let out = rt.cmd(&["list", "--format", "json"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("list json");
    let arr = v.as_array().expect("list json is an array");
    let me = arr
        .iter()
        .find(|c| c["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not in {v}"));
    assert_eq!(me["status"], "running", "{me}");
    assert_eq!(me["pid"].as_i64(), Some(pid as i64), "{me}");
    assert_eq!(
        fs::canonicalize(me["bundle"].as_str().unwrap()).unwrap(),
        fs::canonicalize(b.path()).unwrap()
    );

    for args in [&["list"][..], &["list", "--format", "table"][..]] {
        let out = rt.cmd(args).ok();
        let lines = out.lines();
        assert!(lines[0].starts_with("ID"), "table header: {out:?}");
        let row = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not listed: {out:?}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[1], pid.to_string(), "{row}");
        assert_eq!(cols[2], "running", "{row}");
    }
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

#[test]
fn ps_lists_pids() {
    let rt = Runtime::new("lc-ps");
    let mut b = rt.bundle();
    b.sh("trap 'exit 0' TERM; sleep 100000 & sleep 100001 & wait");
    let (id, pid) = rt.start_container(&b);
    let mut pids = Vec::new();
    let ok = wait_for(TIMEOUT, || {
        let out = rt.cmd(&["ps", "--format", "json", &id]).ok();
        let v: Value = serde_json::from_str(&out.stdout).expect("ps json");
        pids = v
            .as_array()
            .expect("ps json is an array")
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        pids.len() >= 3
    });
    assert!(ok, "expected init + 2 sleeps, got {pids:?}");
    assert!(pids.contains(&(pid as i64)), "{pids:?} lacks init {pid}");
    for p in &pids {
        let cmd = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        assert!(
            *p == pid as i64 || cmd.starts_with("sleep 10000"),
            "unexpected pid {p}: {cmd}"
        );
    }

    let out = rt.cmd(&["ps", &id]).ok();
    let lines = out.lines();
    assert!(lines[0].contains("PID"), "{out:?}");
    assert!(
        lines[1..]
            .iter()
            .any(|l| l.split_whitespace().any(|w| w == pid.to_string())),
        "table lacks init {pid}: {out:?}"
    );
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn delete_force_running_container() {
    let rt = Runtime::new("lc-del-force");
    let mut b = rt.bundle();
    b.sh("sleep 100000 & sleep 100001");
    let (id, pid) = rt.start_container(&b);
    let plain = rt.delete(&id);
    assert!(
        !plain.success(),
        "delete without --force of a running container: {plain:?}"
    );
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.cmd(&["delete", "--force", &id]).ok();
    assert!(
        wait_for(TIMEOUT, || !proc_alive(pid)),
        "init {pid} survived"
    );
    rt.assert_gone(&id);
}

#[test]
fn create_no_pivot() {
    let rt = Runtime::new("lc-no-pivot");
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .sh("ls /bin/busybox > /out/ls && cat /etc/passwd >> /out/ls");
    b.save();
    let id = rt.id();
    rt.cmd(&["create", "--no-pivot", "--bundle", b.path_str(), &id])
        .ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    let ls = fs::read_to_string(out.join("ls")).unwrap();
    assert!(ls.starts_with("/bin/busybox\nroot:x:0:0:"), "{ls:?}");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn create_preserve_fds() {
    let rt = Runtime::new("lc-preserve-fds");
    let log = rt.host_dir("fds").join("fd3.log");
    let file = fs::File::create(&log).unwrap();
    let mut b = rt.bundle();
    b.sh("echo via-fd3 >&3");
    b.save();
    let id = rt.id();
    rt.spawn_with_fds(
        &[
            "create",
            "--preserve-fds",
            "1",
            "--bundle",
            b.path_str(),
            &id,
        ],
        &[&std::os::fd::OwnedFd::from(file)],
    )
    .wait()
    .ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    assert_eq!(fs::read_to_string(&log).unwrap(), "via-fd3\n");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}
