//! cgroup resources of real containers (memory, pids, cpu, devices, hugetlb)
//! and the verbs over them: update, pause, resume, events.
//!
//! The containers use linux.cgroupsPath "/pea/<id>", so their cgroup files
//! are read from the host at /sys/fs/cgroup/<controller>/pea/<id> (v1) and
//! /sys/fs/cgroup/unified/pea/<id> (the cgroup2 part of a hybrid host).

mod common;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Bundle, Runtime, TIMEOUT, runtime_bin, wait_file_contains, wait_for};
use serde_json::{Value, json};

/// Busy loop until SIGTERM.
const BUSY: &str = "trap 'exit 0' TERM; while :; do :; done";

/// A bundle whose cgroup is /pea/<id>, with `resources` merged into
/// linux.resources (next to the default deny-all device rule).
fn bundle_with(rt: &Runtime, id: &str, resources: Value) -> Bundle {
    let mut b = rt.bundle();
    b.config["linux"]["cgroupsPath"] = json!(format!("/pea/{id}"));
    let r = b.config["linux"]["resources"].as_object_mut().unwrap();
    for (k, v) in resources.as_object().unwrap() {
        r.insert(k.clone(), v.clone());
    }
    b
}

/// The container's directory in the v1 hierarchy holding `controller`
/// (which may be co-mounted, e.g. "cpu,cpuacct").
fn v1_dir(controller: &str, id: &str) -> PathBuf {
    let root = PathBuf::from("/sys/fs/cgroup");
    let mount = fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.split(',').any(|c| c == controller))
        .unwrap_or_else(|| panic!("no v1 hierarchy for {controller} under /sys/fs/cgroup"));
    root.join(mount).join("pea").join(id)
}

fn read_trim(p: &PathBuf) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn read_u64(p: &PathBuf) -> u64 {
    let s = read_trim(p);
    s.parse()
        .unwrap_or_else(|_| panic!("{} is not a number: {s:?}", p.display()))
}

/// `events --stats ID`, asserted successful, as the parsed event.
#[track_caller]
fn stats_event(rt: &Runtime, id: &str) -> Value {
    let out = rt.cmd(&["events", "--stats", id]).ok();
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "one event expected: {out:?}");
    let v: Value = serde_json::from_str(&lines[0])
        .unwrap_or_else(|e| panic!("event is not JSON ({e}): {out:?}"));
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], id, "{v}");
    v
}

/// CPU time (ns) the container used while the host slept `wall`, and the
/// wall time that really passed.
fn cpu_over(ids: &[&str], wall: Duration) -> (Vec<u64>, Duration) {
    let files: Vec<PathBuf> = ids
        .iter()
        .map(|id| v1_dir("cpuacct", id).join("cpuacct.usage"))
        .collect();
    let before: Vec<u64> = files.iter().map(read_u64).collect();
    let t0 = Instant::now();
    std::thread::sleep(wall);
    let after: Vec<u64> = files.iter().map(read_u64).collect();
    let took = t0.elapsed();
    let used = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    (used, took)
}

/// Wait (bounded) until the container has used some CPU.
#[track_caller]
fn wait_busy(id: &str) {
    let f = v1_dir("cpuacct", id).join("cpuacct.usage");
    assert!(
        wait_for(TIMEOUT, || read_u64(&f) > 10_000_000),
        "container {id} never used CPU"
    );
}

#[test]
fn memory_limit_oom_kills_and_is_reported() {
    let rt = Runtime::new("cg-oom");
    let out = rt.host_dir("out");
    // First a child of the init exceeds the limit (the init stays up, so the
    // kill shows in stats), then the init itself: the container stops and
    // events, having reported both, ends by itself.
    let id = rt.id();
    let mut b = bundle_with(&rt, &id, json!({"memory": {"limit": 16 << 20}}));
    b.bind(&out, "/out", false)
        .sh("while [ ! -e /out/go ]; do usleep 20000; done; \
         dd if=/dev/zero of=/dev/null bs=64M count=1; echo $? > /out/hog; \
         while [ ! -e /out/go2 ]; do usleep 20000; done; \
         exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let before = stats_event(&rt, &id);
    assert_eq!(
        before["data"]["memory"]["event_count"]["oom_kill"], 0,
        "{before}"
    );
    assert_eq!(
        before["data"]["memory"]["usage"]["limit"],
        16 << 20,
        "{before}"
    );
    let events = rt.spawn(&["events", "--interval", "100ms", &id]);
    let oom_line = format!("{{\"type\":\"oom\",\"id\":\"{id}\"}}");
    let ooms = || events.stdout_so_far().matches(&oom_line).count();
    // The stream is live once it has printed statistics.
    assert!(
        wait_for(TIMEOUT, || events
            .stdout_so_far()
            .contains("\"type\":\"stats\"")),
        "events printed no statistics"
    );
    fs::write(out.join("go"), "").unwrap();
    let hog = wait_file_contains(&out.join("hog"), "\n");
    assert_eq!(hog.trim(), "137", "the hog should die of SIGKILL");
    assert!(
        wait_for(TIMEOUT, || ooms() == 1),
        "events should print one oom event: {:?}",
        events.stdout_so_far()
    );
    let after = stats_event(&rt, &id);
    let kills = after["data"]["memory"]["event_count"]["oom_kill"].as_u64();
    assert_eq!(kills, Some(1), "stats should count the OOM kill: {after}");

    fs::write(out.join("go2"), "").unwrap();
    rt.wait_status(&id, "stopped");
    let ev = events.wait();
    assert!(ev.success(), "{ev:?}");
    assert_eq!(ev.stdout.matches(&oom_line).count(), 2, "{ev:?}");
    for line in ev.lines() {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["type"] == "stats" || v["type"] == "oom", "{v}");
    }
    rt.delete(&id).ok();
    rt.assert_gone(&id);

    // The init itself exceeds the limit: `run` passes on 128 + SIGKILL.
    let id = rt.id();
    let mut b = bundle_with(&rt, &id, json!({"memory": {"limit": 16 << 20}}));
    b.args(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    rt.run(&b, &id).code_is(137);
    rt.assert_gone(&id);
}

#[test]
fn pids_limit_stops_fork_loop() {
    let rt = Runtime::new("cg-pids");
    let out = rt.host_dir("out");
    let id = rt.id();
    let mut b = bundle_with(&rt, &id, json!({"pids": {"limit": 10}}));
    // A failed fork ends a shell, so the fork loop runs in a child shell:
    // init + that shell + 8 sleeps fill the 10 pids and the 9th sleep fails.
    let script = "trap 'exit 0' TERM; \
        sh -c 'for i in $(seq 20); do sleep 100000 & echo $i > /out/started; done' 2>/out/err; \
        echo $? > /out/done; sleep 100000 & wait";
    b.bind(&out, "/out", false).sh(script);
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let rc = wait_file_contains(&out.join("done"), "\n");
    let err = fs::read_to_string(out.join("err")).unwrap();
    let started = read_trim(&out.join("started"));
    assert_ne!(rc.trim(), "0", "the fork loop should fail: {err:?}");
    assert!(err.contains("fork"), "{err:?}");
    assert_eq!(
        started, "8",
        "init + loop shell + 8 sleeps = 10 pids: {err:?}"
    );
    let ev = stats_event(&rt, &id);
    assert_eq!(ev["data"]["pids"]["limit"], 10, "{ev}");
    // The loop shell is gone; its 8 sleeps and init with its own sleep remain.
    assert_eq!(ev["data"]["pids"]["current"], 10, "{ev}");
    let pids = v1_dir("pids", &id);
    assert_eq!(read_u64(&pids.join("pids.max")), 10);
    let events = read_trim(&pids.join("pids.events"));
    assert_ne!(events, "max 0", "the limit should have refused a fork");
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

#[test]
fn cpu_quota_caps_busy_loop() {
    let rt = Runtime::new("cg-quota");
    let id = rt.id();
    let mut b = bundle_with(&rt, &id, json!({"cpu": {"quota": 20000, "period": 100000}}));
    b.sh(BUSY);
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let cpu = v1_dir("cpu", &id);
    assert_eq!(read_u64(&cpu.join("cpu.cfs_quota_us")), 20000);
    assert_eq!(read_u64(&cpu.join("cpu.cfs_period_us")), 100000);
    wait_busy(&id);
    let (used, wall) = cpu_over(&[&id], Duration::from_secs(1));
    let share = used[0] as f64 / wall.as_nanos() as f64;
    eprintln!("quota 20%: measured {:.1}% of one CPU", share * 100.0);
    assert!(
        (0.10..=0.35).contains(&share),
        "a 20% quota gave {:.1}% of one CPU",
        share * 100.0
    );
    let ev = stats_event(&rt, &id);
    let throttled = ev["data"]["cpu"]["throttling"]["throttledPeriods"]
        .as_u64()
        .unwrap_or(0);
    assert!(throttled > 0, "the loop should be throttled: {ev}");
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

#[test]
fn cpu_shares_split_one_cpu() {
    let rt = Runtime::new("cg-shares");
    let mut ids = Vec::new();
    for shares in [700, 300] {
        let id = rt.id();
        let mut b = bundle_with(&rt, &id, json!({"cpu": {"shares": shares, "cpus": "0"}}));
        b.sh(BUSY);
        rt.create(&b, &id).ok();
        assert_eq!(read_u64(&v1_dir("cpu", &id).join("cpu.shares")), shares);
        assert_eq!(read_trim(&v1_dir("cpuset", &id).join("cpuset.cpus")), "0");
        ids.push(id);
    }
    for id in &ids {
        rt.start(id).ok();
    }
    for id in &ids {
        wait_busy(id);
    }
    let (used, _) = cpu_over(&[&ids[0], &ids[1]], Duration::from_secs(2));
    let ratio = used[0] as f64 / used[1].max(1) as f64;
    eprintln!(
        "shares 700:300 on one CPU: {} ns vs {} ns, ratio {ratio:.2}",
        used[0], used[1]
    );
    assert!(
        (1.5..=4.0).contains(&ratio),
        "shares 700:300 split the CPU {} ns : {} ns (ratio {ratio:.2})",
        used[0],
        used[1]
    );
    for id in &ids {
        rt.cmd(&["delete", "--force", id]).ok();
        rt.assert_gone(id);
    }
}

/// As runc: a deny-all followed by the spec's own allow rules, with the
/// default devices (null, zero, full, random, urandom, tty, ptys) allowed
/// implicitly but a `linux.devices` entry only through a spec rule.
#[test]
fn devices_deny_all_allows_only_listed_rules() {
    let rt = Runtime::new("cg-devices");
    let out = rt.host_dir("out");
    let id = rt.id();
    let mut b = bundle_with(
        &rt,
        &id,
        json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]}),
    );
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0},
        {"path": "/dev/othernull", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}
    ]);
    b.bind(&out, "/out", false)
        .sh("[ -c /dev/fuse ] || exit 3; \
         (exec 3<>/dev/fuse) 2>/out/fuse && exit 4; \
         echo x > /dev/null || exit 5; echo x > /dev/othernull || exit 6; \
         head -c 4 /dev/zero | wc -c > /out/zero; \
         echo ok > /out/done; trap 'exit 0' TERM; sleep 100000 & wait");
    rt.create(&b, &id).ok();
    let list = read_trim(&v1_dir("devices", &id).join("devices.list"));
    assert!(list.contains("c 1:3 rwm"), "{list}");
    assert!(!list.contains("c 10:229"), "{list}");
    assert!(!list.contains("a *:* rwm"), "{list}");
    rt.start(&id).ok();
    wait_file_contains(&out.join("done"), "ok");
    let fuse = fs::read_to_string(out.join("fuse")).unwrap();
    assert!(fuse.contains("Operation not permitted"), "{fuse:?}");
    assert_eq!(read_trim(&out.join("zero")), "4");
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

#[test]
fn update_changes_limits_of_running_container() {
    let rt = Runtime::new("cg-update");
    let id = rt.id();
    let mut b = bundle_with(
        &rt,
        &id,
        json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 100}}),
    );
    b.long_running();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let mem = v1_dir("memory", &id).join("memory.limit_in_bytes");
    assert_eq!(read_u64(&mem), 64 << 20);

    rt.cmd(&["update", "--memory", "32m", "--pids-limit", "50", &id])
        .ok();
    assert_eq!(read_u64(&mem), 32 << 20);
    assert_eq!(read_u64(&v1_dir("pids", &id).join("pids.max")), 50);

    // Flags not given leave their values alone.
    rt.cmd(&["update", "--cpu-share", "512", &id]).ok();
    assert_eq!(read_u64(&v1_dir("cpu", &id).join("cpu.shares")), 512);
    assert_eq!(read_u64(&mem), 32 << 20);
    assert_eq!(read_u64(&v1_dir("pids", &id).join("pids.max")), 50);

    let file = rt.host_dir("res").join("r.json");
    fs::write(&file, r#"{"memory": {"limit": 16777216}}"#).unwrap();
    rt.cmd(&["update", "--resources", file.to_str().unwrap(), &id])
        .ok();
    assert_eq!(read_u64(&mem), 16 << 20);

    // --resources - reads the JSON from stdin.
    let mut child = Command::new(runtime_bin())
        .args([
            "--root",
            rt.root().to_str().unwrap(),
            "update",
            "-r",
            "-",
            &id,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"memory": {"limit": 8388608}, "pids": {"limit": 0}}"#)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(read_u64(&mem), 8 << 20);
    assert_eq!(read_u64(&v1_dir("pids", &id).join("pids.max")), 50);

    rt.cmd(&["update", "--memory", "lots", &id])
        .failed()
        .mentions_any(&["--memory"]);
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.cmd(&["update", "--memory", "8m", &id])
        .failed()
        .mentions_any(&[&id])
        .mentions_any(&["stopped"]);
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn pause_freezes_and_resume_continues() {
    let rt = Runtime::new("cg-pause");
    let out = rt.host_dir("out");
    let id = rt.id();
    let mut b = bundle_with(&rt, &id, json!({}));
    b.bind(&out, "/out", false).sh(
        "trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo $i > /out/count; usleep 5000; done",
    );
    let count = out.join("count");
    let read = || fs::read_to_string(&count).unwrap_or_default();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    wait_file_contains(&count, "\n");
    rt.cmd(&["resume", &id])
        .failed()
        .mentions_any(&[&id])
        .mentions_any(&["running"]);

    rt.cmd(&["pause", &id]).ok();
    assert_eq!(rt.state(&id)["status"], "paused");
    assert_eq!(
        read_trim(&v1_dir("freezer", &id).join("freezer.state")),
        "FROZEN"
    );
    let frozen = read();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(), frozen, "the counter moved while paused");
    rt.cmd(&["pause", &id])
        .failed()
        .mentions_any(&[&id])
        .mentions_any(&["paused"]);

    rt.cmd(&["resume", &id]).ok();
    assert_eq!(rt.state(&id)["status"], "running");
    assert!(
        wait_for(TIMEOUT, || {
            let now = read();
            !now.is_empty() && now != frozen
        }),
        "the counter did not continue after resume"
    );

    // A paused container can still be stopped and deleted.
    rt.cmd(&["pause", &id]).ok();
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);

    rt.cmd(&["pause", &id]).failed();
}

#[test]
fn events_stats_cpu_usage_moves() {
    let rt = Runtime::new("cg-events");
    let id = rt.id();
    let mut b = bundle_with(&rt, &id, json!({}));
    b.sh(BUSY);
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    let total = |ev: &Value| ev["data"]["cpu"]["usage"]["total"].as_u64().unwrap_or(0);
    let first = stats_event(&rt, &id);
    assert!(
        first["data"]["pids"]["current"].as_u64() >= Some(1),
        "{first}"
    );
    assert!(
        first["data"]["memory"]["usage"]["limit"].is_u64(),
        "{first}"
    );
    let mut last = first.clone();
    assert!(
        wait_for(TIMEOUT, || {
            last = stats_event(&rt, &id);
            total(&last) > total(&first)
        }),
        "cpu usage did not grow: {first} then {last}"
    );
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
    rt.cmd(&["events", "--stats", &id]).failed();
}

#[test]
fn hugetlb_limit_goes_to_unified_hierarchy() {
    let controllers =
        fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "hugetlb") {
        eprintln!("skipped: no hybrid host with hugetlb on /sys/fs/cgroup/unified");
        return;
    }
    let rt = Runtime::new("cg-hugetlb");
    let id = rt.id();
    let mut b = bundle_with(
        &rt,
        &id,
        json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]}),
    );
    b.long_running();
    rt.create(&b, &id).ok();
    let dir = PathBuf::from("/sys/fs/cgroup/unified/pea").join(&id);
    assert_eq!(read_trim(&dir.join("hugetlb.2MB.max")), "4194304");
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

/// The runtime's own setup inside the container's cgroup must fit in the
/// smallest limits: 1 MiB of memory and a single pid.
#[test]
fn tiny_memory_and_pids_limits_still_run() {
    let rt = Runtime::new("cg-tiny");
    let tiny = json!({"memory": {"limit": 1 << 20}, "pids": {"limit": 1}});

    // The limits are in place while init builds the container.
    let id = rt.id();
    let mut b = bundle_with(&rt, &id, tiny.clone());
    b.args(&["/bin/true"]);
    rt.create(&b, &id).ok();
    let mem = v1_dir("memory", &id);
    assert_eq!(read_u64(&mem.join("memory.limit_in_bytes")), 1 << 20);
    assert_eq!(read_u64(&v1_dir("pids", &id).join("pids.max")), 1);
    let setup = read_u64(&mem.join("memory.max_usage_in_bytes"));
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    eprintln!(
        "1 MiB / 1 pid: peak {} bytes after create, {} bytes in all, failcnt {}, pids failures {:?}",
        setup,
        read_u64(&mem.join("memory.max_usage_in_bytes")),
        read_u64(&mem.join("memory.failcnt")),
        read_trim(&v1_dir("pids", &id).join("pids.events")),
    );
    rt.delete(&id).ok();
    rt.assert_gone(&id);

    let id = rt.id();
    let mut b = bundle_with(&rt, &id, tiny);
    b.args(&["/bin/true"]);
    rt.run(&b, &id).code_is(0);
    rt.assert_gone(&id);
}
