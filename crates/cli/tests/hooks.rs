//! OCI hooks: order, state on stdin, failure handling.

mod common;

use std::fs;
use std::path::Path;

use common::{Bundle, Runtime, TIMEOUT, proc_alive, runtime_is_runc, wait_for};

const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Logs "<hook name> <id from the state on stdin> <status from the state>".
/// Runs under the host's /bin/sh and under busybox sh inside the container.
const HOOK_SCRIPT: &str = r#"state=$(cat)
id=$(echo "$state" | sed -n 's/.*"id" *: *"\([^"]*\)".*/\1/p')
status=$(echo "$state" | sed -n 's/.*"status" *: *"\([^"]*\)".*/\1/p')
echo "$1 $id $status" >> "$2"
"#;

/// Installs every hook kind. The hook dir is bind-mounted into the container at
/// its host path, so the same paths work in the runtime and container namespaces.
fn add_logging_hooks(b: &mut Bundle, dir: &Path) -> std::path::PathBuf {
    let script = dir.join("hook.sh");
    fs::write(&script, HOOK_SCRIPT).unwrap();
    let log = dir.join("hooks.log");
    let dir_s = dir.to_str().unwrap();
    b.bind(dir, dir_s, false);
    for kind in HOOKS {
        b.hook(
            kind,
            "/bin/sh",
            &["sh", script.to_str().unwrap(), kind, log.to_str().unwrap()],
        );
    }
    log
}

fn log_entries(log: &Path) -> Vec<(String, String, String)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut w = l.split(' ').map(str::to_string);
            (
                w.next().unwrap_or_default(),
                w.next().unwrap_or_default(),
                w.next().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn hooks_run_in_spec_order_with_state_on_stdin() {
    let rt = Runtime::new("hooks-order");
    let dir = rt.host_dir("hooks");
    let mut b = rt.bundle();
    b.long_running();
    let log = add_logging_hooks(&mut b, &dir);
    let id = rt.id();

    rt.create(&b, &id).ok();
    let names = |log: &Path| -> Vec<String> { log_entries(log).into_iter().map(|e| e.0).collect() };
    let after_create = names(&log);
    assert!(
        !after_create
            .iter()
            .any(|n| n == "startContainer" || n == "poststop"),
        "hooks of later phases ran at create: {after_create:?}"
    );
    let create_phase = ["prestart", "createRuntime", "createContainer"];
    for h in create_phase {
        assert!(
            after_create.iter().any(|n| n == h),
            "{h} did not run at create: {after_create:?}"
        );
    }

    rt.start(&id).ok();
    // startContainer runs before the user process; poststart before `start` returns.
    let after_start = names(&log);
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    assert!(
        !after_start.iter().any(|n| n == "poststop"),
        "poststop ran before delete: {after_start:?}"
    );
    rt.delete(&id).ok();
    rt.assert_gone(&id);

    let entries = log_entries(&log);
    for (name, hook_id, _) in &entries {
        assert_eq!(
            hook_id, &id,
            "{name} got a state for another id: {entries:?}"
        );
    }
    let mut got: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    let mut want: Vec<&str> = HOOKS.to_vec();
    if runtime_is_runc() {
        // Known runc deviation (opencontainers/runc#1710, fixed by runc#5186): runc
        // runs poststart hooks during create. Check everything but its placement.
        eprintln!("runc: not checking where poststart runs");
        assert_eq!(
            got.iter().filter(|n| **n == "poststart").count(),
            1,
            "{entries:?}"
        );
        got.retain(|n| *n != "poststart");
        want.retain(|n| *n != "poststart");
    } else {
        assert!(
            !after_create.iter().any(|n| n == "poststart"),
            "poststart ran at create: {after_create:?}"
        );
        assert!(
            after_start.iter().any(|n| n == "poststart"),
            "poststart did not run before start returned: {after_start:?}"
        );
    }
    assert_eq!(got, want, "hook order: {entries:?}");
    let status_of = |h: &str| entries.iter().find(|e| e.0 == h).map(|e| e.2.clone());
    assert_eq!(
        status_of("poststop").as_deref(),
        Some("stopped"),
        "{entries:?}"
    );
    if !runtime_is_runc() {
        assert_eq!(
            status_of("poststart").as_deref(),
            Some("running"),
            "{entries:?}"
        );
    }
}

#[test]
fn hooks_run_for_foreground_run() {
    let rt = Runtime::new("hooks-run");
    let dir = rt.host_dir("hooks");
    let mut b = rt.bundle();
    b.sh("echo hi");
    let log = add_logging_hooks(&mut b, &dir);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["hi"], "{out:?}");
    let entries = log_entries(&log);
    let mut got: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    got.sort();
    let mut want = HOOKS.to_vec();
    want.sort();
    assert_eq!(got, want, "each hook exactly once: {entries:?}");
    assert_eq!(
        entries.last().map(|e| e.0.as_str()),
        Some("poststop"),
        "{entries:?}"
    );
    rt.assert_gone(&id);
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let rt = Runtime::new("hooks-fail");
    let dir = rt.host_dir("hooks");
    let marker = dir.join("user-process-ran");
    let mut b = rt.bundle();
    b.bind(&dir, "/hooks", false)
        .sh("touch /hooks/user-process-ran; sleep 100000")
        .hook(
            "createRuntime",
            "/bin/sh",
            &["sh", "-c", "cat >/dev/null; exit 7"],
        );
    let id = rt.id();
    let out = rt.create(&b, &id);
    assert!(
        !out.success(),
        "create must fail when createRuntime fails: {out:?}"
    );
    assert!(!out.stderr.trim().is_empty(), "{out:?}");
    rt.assert_gone(&id);
    assert!(!marker.exists(), "the user process ran");
    // `start` of the failed container fails too.
    assert!(!rt.start(&id).success());
    assert!(!marker.exists(), "the user process ran");
}

#[test]
fn failing_start_container_hook_stops_container() {
    let rt = Runtime::new("hooks-fail-start");
    let dir = rt.host_dir("hooks");
    let marker = dir.join("user-process-ran");
    let mut b = rt.bundle();
    b.bind(&dir, "/hooks", false)
        .sh("touch /hooks/user-process-ran; sleep 100000")
        .hook("startContainer", "/bin/sh", &["sh", "-c", "exit 7"]);
    let id = rt.id();
    rt.create(&b, &id).ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    // The spec wants an error from `start`; runc 1.1 exits 0 here (the hook runs in
    // the container's init after `start` has been acknowledged), so only the
    // outcome is checked: the user process never runs and the container stops.
    let _ = rt.start(&id);
    rt.wait_status(&id, "stopped");
    assert!(
        wait_for(TIMEOUT, || !proc_alive(pid)),
        "init {pid} still alive"
    );
    assert!(!marker.exists(), "the user process ran");
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}
