//! exec into running containers.

mod common;

use std::fs;

use common::{Runtime, TIMEOUT, ns_link, proc_alive, wait_for};

const NS_KINDS: [&str; 7] = ["net", "ipc", "uts", "mnt", "pid", "cgroup", "user"];

#[test]
fn exec_joins_namespaces_and_cgroup_of_init() {
    let rt = Runtime::new("exec-join");
    let mut b = rt.bundle();
    b.long_running();
    let (id, init) = rt.start_container(&b);

    // Seen from inside the exec'd process.
    let out = rt
        .exec(&[
            &id,
            "sh",
            "-c",
            "for n in net ipc uts mnt pid cgroup user; do \
               echo \"$n $(readlink /proc/1/ns/$n) $(readlink /proc/self/ns/$n)\"; done; \
             echo --; cat /proc/1/cgroup; echo --; cat /proc/self/cgroup; echo --; hostname",
        ])
        .code_is(0);
    let sections: Vec<&str> = out.stdout.split("--\n").collect();
    assert_eq!(sections.len(), 4, "{out:?}");
    let ns_lines: Vec<&str> = sections[0].lines().collect();
    assert_eq!(ns_lines.len(), NS_KINDS.len(), "{out:?}");
    for l in ns_lines {
        let w: Vec<&str> = l.split(' ').collect();
        assert!(
            w.len() == 3 && !w[1].is_empty(),
            "cannot read namespaces: {l:?}"
        );
        assert_eq!(w[1], w[2], "exec is not in init's {} namespace", w[0]);
    }
    assert!(!sections[1].trim().is_empty(), "{out:?}");
    assert_eq!(
        sections[1], sections[2],
        "cgroup of exec differs from init's"
    );
    assert_eq!(sections[3].trim(), b.hostname());

    // Seen from the host, with a detached exec.
    let pid_file = rt.host_dir("pid").join("exec.pid");
    rt.exec(&[
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "100000",
    ])
    .ok();
    let pid: i32 = fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid in pid file");
    assert!(proc_alive(pid), "detached exec {pid} not running");
    assert_ne!(pid, init);
    for kind in NS_KINDS {
        assert_eq!(
            ns_link(Some(pid), kind),
            ns_link(Some(init), kind),
            "{kind}"
        );
    }
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap()
    );
    let out = rt.cmd(&["ps", "--format", "json", &id]).ok();
    let pids: Vec<i64> = serde_json::from_str(&out.stdout).expect("ps json");
    assert!(
        pids.contains(&(pid as i64)),
        "ps lacks exec'd {pid}: {pids:?}"
    );

    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    assert!(
        wait_for(TIMEOUT, || !proc_alive(pid)),
        "exec'd {pid} survived init"
    );
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn exec_exit_code_and_output() {
    let rt = Runtime::new("exec-exit");
    let mut b = rt.bundle();
    b.long_running();
    let (id, _) = rt.start_container(&b);
    let out = rt
        .exec(&[&id, "sh", "-c", "echo out-line; echo err-line >&2; exit 42"])
        .code_is(42);
    assert_eq!(out.lines(), ["out-line"], "{out:?}");
    assert!(out.stderr.contains("err-line"), "{out:?}");
    rt.exec(&[&id, "true"]).code_is(0);
    // The container is unaffected by its exec'd processes.
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn exec_env_cwd_user() {
    let rt = Runtime::new("exec-opts");
    let mut b = rt.bundle();
    b.env("FROM_CONFIG=cfg").long_running();
    let (id, _) = rt.start_container(&b);
    let out = rt
        .exec(&[
            "--env",
            "FOO=bar",
            "--env",
            "BAZ=qux",
            "--cwd",
            "/tmp",
            "--user",
            "65534:65534",
            &id,
            "sh",
            "-c",
            "echo $FOO $BAZ $FROM_CONFIG; pwd; id -u; id -g",
        ])
        .code_is(0);
    assert_eq!(
        out.lines(),
        ["bar qux cfg", "/tmp", "65534", "65534"],
        "{out:?}"
    );

    // Defaults: the config's user and cwd.
    let out = rt.exec(&[&id, "sh", "-c", "pwd; id -u"]).code_is(0);
    assert_eq!(out.lines(), ["/", "0"], "{out:?}");

    // --user UID alone.
    let out = rt.exec(&["--user", "65534", &id, "id", "-u"]).code_is(0);
    assert_eq!(out.lines(), ["65534"], "{out:?}");

    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn exec_process_json() {
    let rt = Runtime::new("exec-process");
    let mut b = rt.bundle();
    b.long_running();
    let (id, _) = rt.start_container(&b);
    let process = serde_json::json!({
        "terminal": false,
        "user": {"uid": 65534, "gid": 65534},
        "args": ["sh", "-c", "echo from-json $FOO; pwd; id -u; exit 9"],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FOO=bar"],
        "cwd": "/tmp"
    });
    let path = rt.host_dir("process").join("process.json");
    fs::write(&path, process.to_string()).unwrap();
    let out = rt
        .exec(&["--process", path.to_str().unwrap(), &id])
        .code_is(9);
    assert_eq!(out.lines(), ["from-json bar", "/tmp", "65534"], "{out:?}");
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn exec_missing_executable_fails() {
    let rt = Runtime::new("exec-missing");
    let mut b = rt.bundle();
    b.long_running();
    let (id, _) = rt.start_container(&b);
    let out = rt.exec(&[&id, "/nonexistent-binary"]);
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("nonexistent-binary"), "{out:?}");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn exec_into_stopped_container_fails() {
    let rt = Runtime::new("exec-stopped");
    let mut b = rt.bundle();
    b.sh("exit 0");
    let (id, _) = rt.start_container(&b);
    rt.wait_status(&id, "stopped");
    rt.exec(&[&id, "true"]).failed();
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}
