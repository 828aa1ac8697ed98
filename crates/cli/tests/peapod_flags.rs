//! `peapod run` flags seen from inside (and around) the container:
//! capabilities, privileges, rlimits, cgroup limits, hostname, entrypoint,
//! labels, stop signal and timeout, user namespaces, restart policies, and
//! the one-line errors of bad input.

mod peapod_common;

use std::time::Duration;

use peapod_common::{Peapod, TIMEOUT, secs_between, usable, wait_for};

/// The `CapEff` mask of the container's shell.
fn cap_eff(p: &Peapod, extra: &[&str]) -> u64 {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "grep", "CapEff", "/proc/self/status"]);
    let out = p.ok(&args);
    let hex = out.split_whitespace().nth(1).expect("CapEff value");
    u64::from_str_radix(hex, 16).unwrap()
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_NET_RAW: u64 = 1 << 13;
const CAP_SYS_ADMIN: u64 = 1 << 21;

#[test]
fn capabilities_privileged_no_new_privileges_ulimit() {
    if !usable() {
        return;
    }
    let p = Peapod::new("caps");
    let default = cap_eff(&p, &[]);
    assert_ne!(default & CAP_CHOWN, 0, "chown is a default capability");
    assert_eq!(default & CAP_SYS_ADMIN, 0, "no sys_admin by default");
    let dropped = cap_eff(&p, &["--cap-drop", "CHOWN", "--cap-drop", "net_raw"]);
    assert_eq!(dropped & (CAP_CHOWN | CAP_NET_RAW), 0, "{dropped:x}");
    assert_eq!(dropped, default & !(CAP_CHOWN | CAP_NET_RAW));
    let added = cap_eff(&p, &["--cap-add", "SYS_ADMIN"]);
    assert_eq!(added, default | CAP_SYS_ADMIN);
    let all = cap_eff(&p, &["--privileged"]);
    assert_ne!(all & CAP_SYS_ADMIN, 0, "--privileged has every capability");
    // chown fails without CAP_CHOWN.
    let (code, _, err) = p.code(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "chown",
        "1000",
        "/tmp",
    ]);
    assert_ne!(code, 0, "chown without CAP_CHOWN: {err}");

    let nnp = |extra: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["busybox", "grep", "NoNewPrivs", "/proc/self/status"]);
        p.ok(&args)
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(nnp(&["--security-opt", "no-new-privileges"]), "1");
    assert_eq!(nnp(&[]), "0");

    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:2048",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -H -n",
    ]);
    assert_eq!(out, "1024\n2048\n");
}

/// The value of cgroup file `file` of container `id` on the host, v1 or v2.
fn cgroup_value(id: &str, v1_controller: &str, file: &str) -> Option<String> {
    for dir in [
        format!("/sys/fs/cgroup/{v1_controller}/peapod/{id}"),
        format!("/sys/fs/cgroup/peapod/{id}"),
        format!("/sys/fs/cgroup/unified/peapod/{id}"),
    ] {
        if let Ok(v) = std::fs::read_to_string(format!("{dir}/{file}")) {
            return Some(v.trim().to_string());
        }
    }
    None
}

#[test]
fn cgroup_limits_are_applied() {
    if !usable() {
        return;
    }
    let p = Peapod::new("cg");
    let name = p.name("c");
    let id = p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "64",
        "--memory",
        "64m",
        "busybox",
        "sleep",
        "1000",
    ]);
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && !std::path::Path::new("/sys/fs/cgroup/memory").exists();
    if v2 {
        assert_eq!(
            cgroup_value(&id, "", "cpu.max").as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cgroup_value(&id, "", "pids.max").as_deref(), Some("64"));
        assert_eq!(
            cgroup_value(&id, "", "memory.max").as_deref(),
            Some("67108864")
        );
        let weight = cgroup_value(&id, "", "cpu.weight").expect("cpu.weight");
        assert_ne!(weight, "100", "--cpu-shares 512 changes the weight");
    } else {
        assert_eq!(
            cgroup_value(&id, "cpu", "cpu.cfs_quota_us").as_deref(),
            Some("50000")
        );
        assert_eq!(
            cgroup_value(&id, "cpu", "cpu.cfs_period_us").as_deref(),
            Some("100000")
        );
        assert_eq!(
            cgroup_value(&id, "cpu", "cpu.shares").as_deref(),
            Some("512")
        );
        assert_eq!(cgroup_value(&id, "pids", "pids.max").as_deref(), Some("64"));
        assert_eq!(
            cgroup_value(&id, "memory", "memory.limit_in_bytes").as_deref(),
            Some("67108864")
        );
    }
    p.ok(&["rm", "-f", &name]);
    let left = p.leftovers(&id);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn hostname_entrypoint_labels() {
    if !usable() {
        return;
    }
    let p = Peapod::new("meta");
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--hostname",
        "my-box",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/hostname",
    ]);
    assert_eq!(out, "my-box\nmy-box\n");
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "echo",
        "busybox",
        "from",
        "entrypoint",
    ]);
    assert_eq!(out, "from entrypoint\n");
    let name = p.name("lab");
    p.ok(&[
        "create",
        "--name",
        &name,
        "--network",
        "none",
        "--label",
        "team=core",
        "-l",
        "empty",
        "busybox",
        "true",
    ]);
    let r = p.record(&name);
    let labels = &r["setup"]["request"]["labels"];
    assert_eq!(labels["team"], "core", "{r}");
    assert_eq!(labels["empty"], "", "{r}");
    assert_eq!(r["state"]["status"], "created");
    p.ok(&["start", &name]);
    p.wait_exited(&name, TIMEOUT);
    assert_eq!(p.record(&name)["state"]["code"], 0);
}

#[test]
fn stop_signal_and_stop_timeout() {
    if !usable() {
        return;
    }
    let p = Peapod::new("stop");
    // The trap sees the configured signal.
    let name = p.name("sig");
    p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "--stop-signal",
        "USR1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 0' USR1; trap 'echo got-term; exit 0' TERM; echo ready; \
         while true; do sleep 1; done",
    ]);
    assert!(wait_for(TIMEOUT, || p
        .ok(&["logs", &name])
        .contains("ready")));
    p.ok(&["stop", &name]);
    let logs = p.ok(&["logs", &name]);
    assert!(logs.contains("got-usr1"), "{logs}");
    assert!(!logs.contains("got-term"), "{logs}");
    assert_eq!(p.record(&name)["state"]["code"], 0);

    // A container that ignores its stop signal is killed after
    // --stop-timeout: the recorded end is SIGKILL, about 1 s after the
    // signal (checked from the record, with a wide tolerance).
    let name = p.name("timeout");
    p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "--stop-timeout",
        "1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo ignoring' TERM; echo ready; while true; do sleep 1; done",
    ]);
    assert!(wait_for(TIMEOUT, || p
        .ok(&["logs", &name])
        .contains("ready")));
    assert_eq!(p.record(&name)["setup"]["stop_timeout"], 1);
    p.ok(&["stop", &name]);
    let r = p.record(&name);
    assert_eq!(r["state"]["code"], 137, "{r}");
    assert!(p.ok(&["logs", &name]).contains("ignoring"));
}

#[test]
fn userns_auto_maps_to_a_private_range() {
    if !usable() {
        return;
    }
    let p = Peapod::new("userns");
    let host = std::fs::read_to_string("/proc/self/uid_map").unwrap();
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--userns",
        "auto",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u",
    ]);
    let mut lines = out.lines();
    let map: Vec<u64> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_ne!(
        map,
        host.split_whitespace()
            .map(|n| n.parse::<u64>().unwrap())
            .collect::<Vec<_>>(),
        "{out}"
    );
    assert_eq!(map[0], 0, "root inside: {out}");
    assert_ne!(map[1], 0, "not root outside: {out}");
    assert_eq!(lines.next(), Some("0"));
}

#[test]
fn restart_always_restarts_until_stopped() {
    if !usable() {
        return;
    }
    let p = Peapod::new("always");
    let name = p.name("c");
    p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "echo run; sleep 1; exit 2",
    ]);
    // `wait` waits through the restarts (the record's brief "exited"
    // between a run's end and the supervisor's decision is not an end).
    let mut waiter = p
        .command(&["wait", &name])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // During the back-off it shows as restarting.
    assert!(wait_for(TIMEOUT, || p.status(&name) == "restarting"));
    assert_eq!(
        p.ok(&["inspect", "--format", "{{.State.Status}}", &name])
            .trim(),
        "restarting"
    );
    // The first restart comes after the 10 s back-off.
    assert!(
        wait_for(Duration::from_secs(30), || p.record(&name)["restart_count"]
            .as_u64()
            .unwrap_or(0)
            >= 1
            && p.status(&name) == "running"),
        "{}",
        p.record(&name)
    );
    assert_eq!(p.ok(&["logs", &name]).matches("run\n").count(), 2);
    let early = waiter.try_wait().unwrap();
    if early.is_some() {
        let _ = waiter.wait();
    }
    assert!(
        early.is_none(),
        "wait returned while the container restarts"
    );
    p.ok(&["stop", &name]);
    assert!(waiter.wait().unwrap().success(), "wait ends with the stop");
    let r = p.record(&name);
    assert_eq!(r["state"]["status"], "exited", "{r}");
    assert_eq!(r["stopped_by_user"], true);
    let count = r["restart_count"].clone();
    std::thread::sleep(Duration::from_secs(2));
    let r = p.record(&name);
    assert_eq!(r["restart_count"], count, "no restart after stop");
    assert_eq!(r["state"]["status"], "exited");
}

#[test]
fn restart_on_failure_three_times_with_growing_delay() {
    if !usable() {
        return;
    }
    let p = Peapod::new("onfail");
    let name = p.name("c");
    p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "echo attempt; exit 1",
    ]);
    // `logs -f` follows through the restarts to the final end.
    let follow = p.command(&["logs", "-f", &name]);
    let follower = std::thread::spawn(move || {
        peapod_common::output_within(follow, None, Duration::from_secs(200))
    });
    // 10 + 20 + 40 s of back-off; between runs the record may say exited
    // for a moment, so wait for the supervisor to be gone too.
    let id = p.id_of(&name).unwrap();
    assert!(
        wait_for(Duration::from_secs(150), || p.status(&name) == "exited"
            && peapod_common::processes_mentioning(&id).is_empty()),
        "{}",
        p.record(&name)
    );
    let r = p.record(&name);
    assert_eq!(r["restart_count"], 3, "{r}");
    assert_eq!(r["state"]["code"], 1, "{r}");
    let runs: Vec<&str> = r["runs"]
        .as_array()
        .expect("the record's run history")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(runs.len(), 4, "one start and three restarts: {r}");
    let gaps: Vec<f64> = runs.windows(2).map(|w| secs_between(w[0], w[1])).collect();
    for (gap, want) in gaps.iter().zip([10.0, 20.0, 40.0]) {
        assert!(
            *gap >= want && *gap < want + 5.0,
            "restart delays {gaps:?}, want about 10, 20, 40 s"
        );
    }
    assert_eq!(p.ok(&["logs", &name]).matches("attempt\n").count(), 4);
    let followed = follower.join().unwrap();
    assert!(followed.status.success(), "{followed:?}");
    assert_eq!(
        String::from_utf8_lossy(&followed.stdout),
        "attempt\n".repeat(4),
        "logs -f stopped before the last run"
    );
}

#[test]
fn bad_input_is_one_line_exit_125_and_leaves_nothing() {
    if !usable() {
        return;
    }
    let p = Peapod::new("bad");
    let cases: &[&[&str]] = &[
        &["run", "--network", "none", "no-such-image:zzz", "true"],
        &["run", "--no-such-flag", "busybox", "true"],
        &[
            "run",
            "--network",
            "none",
            "--memory",
            "lots",
            "busybox",
            "true",
        ],
        &[
            "run",
            "--network",
            "none",
            "--restart",
            "sometimes",
            "busybox",
        ],
        &[
            "run",
            "--network",
            "none",
            "-w",
            "relative",
            "busybox",
            "true",
        ],
        &[
            "run",
            "--network",
            "none",
            "--ulimit",
            "nofile=x",
            "busybox",
        ],
        &[
            "run",
            "--network",
            "none",
            "-v",
            "relative/dir:/x",
            "busybox",
        ],
        &[
            "create",
            "--network",
            "none",
            "--net",
            "container:nope",
            "busybox",
        ],
    ];
    // Make the image first, so the failures are about the flags.
    p.ok(&["run", "--rm", "--network", "none", "busybox", "true"]);
    for args in cases {
        let (code, line) = p.fails(args);
        assert_eq!(code, 125, "{args:?}: {line}");
        assert!(
            line.starts_with("peapod: ") || line.starts_with("error"),
            "{line}"
        );
        assert!(p.ids().is_empty(), "{args:?} left a record: {:?}", p.ids());
        assert!(
            p.mounts().is_empty(),
            "{args:?} left mounts: {:?}",
            p.mounts()
        );
        let netns: Vec<_> = std::fs::read_dir(p.run_root.join("netns"))
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        assert!(netns.is_empty(), "{args:?} left a netns: {netns:?}");
    }
    // A name in use.
    let name = p.name("dup");
    p.ok(&["create", "--name", &name, "--network", "none", "busybox"]);
    let (code, line) = p.fails(&["run", "--name", &name, "--network", "none", "busybox"]);
    assert_eq!(code, 125);
    assert!(line.contains("already in use"), "{line}");
    assert_eq!(p.ids().len(), 1);
}
