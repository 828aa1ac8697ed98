//! The detached supervisor and the per-run monitor survive being killed:
//! SIGKILL to the supervisor leaves status, logs, stop and rm working; a
//! killed monitor's container still has its own exit code recorded (the
//! supervisor adopts it); both killed, `rm -f` still cleans up.

mod peapod_common;

use std::time::Duration;

use peapod_common::{Peapod, TIMEOUT, processes_mentioning, usable, wait_for};

fn kill9(pid: i64) {
    assert!(pid > 1, "a real pid: {pid}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

fn gone(pid: i64) -> bool {
    // A zombie (not yet reaped by init) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rfind(')')
            .is_some_and(|i| s[i + 1..].trim_start().starts_with('Z'))
    })
}

#[test]
fn supervisor_sigkill_leaves_status_logs_stop_rm_working() {
    if !usable() {
        return;
    }
    let p = Peapod::new("supkill");
    let name = p.name("c");
    let id = p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo up; trap 'exit 0' TERM; sleep 1000 & wait",
    ]);
    assert!(wait_for(TIMEOUT, || p.ok(&["logs", &name]).contains("up")));
    let sup = p.record(&name)["supervisor"]["pid"].as_i64().unwrap();
    kill9(sup);
    assert!(wait_for(TIMEOUT, || gone(sup)));
    // The container runs on under its monitor.
    assert_eq!(p.status(&name), "running");
    let ps = p.ok(&["ps"]);
    let line = ps.lines().find(|l| l.contains(&name)).unwrap_or_default();
    assert!(line.contains("Up"), "ps after the supervisor died: {ps}");
    assert_eq!(
        p.ok(&["inspect", "--format", "{{.State.Status}}", &name])
            .trim(),
        "running"
    );
    let pid = p.record(&name)["state"]["pid"].as_i64().unwrap();
    assert!(!gone(pid), "the container's process lives");
    assert_eq!(p.ok(&["logs", &name]), "up\n");
    assert_eq!(p.ok(&["exec", &name, "echo", "still-here"]), "still-here\n");
    p.ok(&["stop", &name]);
    let r = p.record(&name);
    assert_eq!(r["state"]["status"], "exited", "{r}");
    assert_eq!(r["state"]["code"], 0, "the TERM trap's code: {r}");
    assert!(gone(pid));
    p.ok(&["rm", &name]);
    let left = p.leftovers(&id);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn monitor_sigkill_still_records_the_exit_code() {
    if !usable() {
        return;
    }
    let p = Peapod::new("monkill");
    let name = p.name("c");
    let id = p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo before; sleep 3; echo after; exit 7",
    ]);
    let mon = p.record(&name)["monitor"]["pid"].as_i64().unwrap();
    kill9(mon);
    let r = p.wait_exited(&name, TIMEOUT);
    assert_eq!(r["state"]["code"], 7, "the supervisor adopted it: {r}");
    assert_eq!(
        p.ok(&["inspect", "--format", "{{.State.ExitCode}}", &name])
            .trim(),
        "7"
    );
    assert_eq!(p.ok(&["wait", &name]).trim(), "7");
    // Output written before the monitor died is in the log.
    assert!(p.ok(&["logs", &name]).contains("before"));
    assert!(
        wait_for(TIMEOUT, || processes_mentioning(&id).is_empty()),
        "supervisor or monitor left: {:?}",
        processes_mentioning(&id)
    );
    p.ok(&["rm", &name]);
    let left = p.leftovers(&id);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn both_killed_then_rm_f_cleans_up() {
    if !usable() {
        return;
    }
    let p = Peapod::new("bothkill");
    let name = p.name("c");
    let id = p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "--restart",
        "on-failure",
        "busybox",
        "sleep",
        "1000",
    ]);
    let r = p.record(&name);
    let (sup, mon) = (
        r["supervisor"]["pid"].as_i64().unwrap(),
        r["monitor"]["pid"].as_i64().unwrap(),
    );
    let pid = r["state"]["pid"].as_i64().unwrap();
    kill9(sup);
    kill9(mon);
    assert!(wait_for(TIMEOUT, || gone(sup) && gone(mon)));
    // Nobody of peapod's watches it, but it runs.
    assert_eq!(p.status(&name), "running");
    assert!(!gone(pid));
    p.ok(&["rm", "-f", &name]);
    assert!(p.id_of(&name).is_none());
    assert!(
        wait_for(TIMEOUT, || gone(pid)),
        "the container's process ended"
    );
    let left = p.leftovers(&id);
    assert!(left.is_empty(), "{left:?}");

    // The same with a stop instead of rm -f: the end is recorded.
    let name = p.name("s");
    p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    let r = p.record(&name);
    kill9(r["supervisor"]["pid"].as_i64().unwrap());
    kill9(r["monitor"]["pid"].as_i64().unwrap());
    std::thread::sleep(Duration::from_millis(200));
    p.ok(&["stop", "-t", "1", &name]);
    let r = p.record(&name);
    assert_eq!(r["state"]["status"], "exited", "{r}");
    p.ok(&["rm", &name]);
}
