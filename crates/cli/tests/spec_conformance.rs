//! Conformance with the OCI runtime-spec as the runtime-tools validation suite
//! (opencontainers/runtime-tools, validation/<case>) checks it, for the cases
//! the other test files do not already cover. Each test names its case.

mod common;

use std::fs;
use std::path::Path;

use common::{Bundle, Runtime, TIMEOUT, host_mountinfo, proc_alive, wait_for};
use nix::sys::stat::{Mode, SFlag, mknod};
use serde_json::{Value, json};

/// Adds a hook of `kind` running `script` under the host's /bin/sh.
fn sh_hook(b: &mut Bundle, kind: &str, script: &str) {
    b.hook(kind, "/bin/sh", &["sh", "-c", script]);
}

/// Creates and starts `b`, waits until it stopped; returns the id.
fn run_detached_to_stop(rt: &Runtime, b: &Bundle) -> String {
    let id = rt.id();
    rt.create(b, &id).ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    id
}

/// (mount point, fstype, source) of every line of a mountinfo listing, in order.
fn mountinfo_entries(mountinfo: &str) -> Vec<(String, String, String)> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mp = left.split(' ').nth(4)?.to_string();
            let mut r = right.split(' ');
            Some((mp, r.next()?.to_string(), r.next()?.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// lifecycle: kill, delete, create, start

/// runtime-tools validation/kill_no_effect: signalling a stopped container
/// fails and leaves its state as it was.
#[test]
fn kill_of_stopped_container_fails_without_effect() {
    let rt = Runtime::new("sc-kill-noeffect");
    let mut b = rt.bundle();
    b.args(&["true"]);
    let id = run_detached_to_stop(&rt, &b);
    let before = rt.state(&id);
    rt.kill(&id, "KILL").failed();
    assert_eq!(rt.state(&id), before);
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

/// runtime-tools validation/kill ("kill a created"): a created container can
/// be signalled; SIGKILL stops it without the user program ever running.
#[test]
fn kill_of_created_container() {
    let rt = Runtime::new("sc-kill-created");
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    b.bind(&out, "/out", false).sh("touch /out/ran");
    let id = rt.id();
    rt.create(&b, &id).ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap() as i32;
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    assert!(wait_for(TIMEOUT, || !proc_alive(pid)));
    assert!(!out.join("ran").exists(), "the user program ran");
    rt.start(&id).failed();
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

/// runtime-tools validation/killsig: `kill` sends the named signal (TERM,
/// USR1, USR2) to the container process.
#[test]
fn kill_delivers_the_named_signal() {
    let rt = Runtime::new("sc-killsig");
    for sig in ["TERM", "USR1", "USR2"] {
        let mut b = rt.bundle();
        b.readonly_root(false).sh(&format!(
            "trap 'touch /{sig}' {sig}; sleep 100000 & wait $!"
        ));
        let id = rt.id();
        rt.create(&b, &id).ok();
        rt.start(&id).ok();
        rt.wait_status(&id, "running");
        rt.kill(&id, sig).ok();
        rt.wait_status(&id, "stopped");
        assert!(b.rootfs().join(sig).exists(), "{sig} was not delivered");
        rt.delete(&id).ok();
        rt.assert_gone(&id);
    }
}

/// runtime-tools validation/config_updates_without_affect: once `create`
/// returned, changes to config.json do not affect the container (start,
/// the process and the poststop hooks all follow the config create read).
#[test]
fn config_changes_after_create_do_not_affect_the_container() {
    let rt = Runtime::new("sc-cfg-update");
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .sh("echo original > /out/ran")
        .annotation("org.peapod.test", "original");
    let marker = out.join("poststop");
    sh_hook(&mut b, "poststop", &format!("cat > {}", marker.display()));
    let id = rt.id();
    rt.create(&b, &id).ok();
    fs::write(b.path().join("config.json"), r#"{"ociVersion": "1.0.0"}"#).unwrap();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    assert_eq!(fs::read_to_string(out.join("ran")).unwrap(), "original\n");
    assert_eq!(rt.state(&id)["annotations"]["org.peapod.test"], "original");
    rt.delete(&id).ok();
    let st: Value = serde_json::from_str(&fs::read_to_string(&marker).unwrap()).unwrap();
    assert_eq!(st["id"], id.as_str(), "{st}");
    rt.assert_gone(&id);
}

/// runtime-tools validation/misc_props: unknown properties and annotation
/// keys are accepted; an invalid value (ociVersion "invalid") is an error.
#[test]
fn unknown_properties_accepted_invalid_version_refused() {
    let rt = Runtime::new("sc-misc-props");
    let mut b = rt.bundle();
    b.sh("echo ok");
    b.config["unknown"] = json!("unknown");
    b.config["linux"]["unknownToo"] = json!({"x": 1});
    let id = rt.id();
    b.annotation(&format!("org.{id}"), "");
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["ok"], "{out:?}");
    rt.assert_gone(&id);

    for bad in ["invalid", "2.0.0", "1.0"] {
        b.config["ociVersion"] = json!(bad);
        let id = rt.id();
        rt.create(&b, &id).failed().mentions_any(&["ociVersion"]);
        rt.assert_gone(&id);
    }
}

/// runtime-tools validation/delete_only_create_resources: `delete` removes
/// the cgroup it made, never one the container's process was moved into.
#[test]
fn delete_leaves_cgroups_it_did_not_create() {
    let pids = Path::new("/sys/fs/cgroup/pids");
    if !pids.join("cgroup.procs").exists() || !pids.join("tasks").exists() {
        eprintln!("skipped: no cgroup v1 pids hierarchy");
        return;
    }
    let rt = Runtime::new("sc-del-foreign-cg");
    let mut b = rt.bundle();
    b.sh("sleep 0.2");
    let id = rt.id();
    let foreign = pids.join(format!("{id}-foreign"));
    fs::create_dir(&foreign).unwrap();
    rt.create(&b, &id).ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    fs::write(foreign.join("cgroup.procs"), pid.to_string()).unwrap();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    let kept = foreign.exists();
    assert!(wait_for(TIMEOUT, || fs::remove_dir(&foreign).is_ok()));
    assert!(kept, "delete removed a cgroup it did not create");
    rt.assert_gone(&id);
}

// ---------------------------------------------------------------------------
// hooks

/// runtime-tools validation/hooks, poststart_fail and poststop_fail: hooks of
/// one kind run in the listed order; a failing poststart or poststop hook is
/// only a warning: the hooks after it still run, start and delete succeed.
#[test]
fn hooks_run_in_listed_order_and_post_hook_failures_are_warnings() {
    let rt = Runtime::new("sc-hooks-order");
    let dir = rt.host_dir("hooks");
    let log = dir.join("log");
    let echo = |s: &str| format!("cat > /dev/null; echo {s} >> {}", log.display());
    let mut b = rt.bundle();
    b.args(&["true"]);
    sh_hook(&mut b, "prestart", &echo("pre-start1"));
    sh_hook(&mut b, "prestart", &echo("pre-start2"));
    sh_hook(&mut b, "poststart", &echo("post-start1"));
    b.hook("poststart", "/bin/false", &["false"]);
    sh_hook(&mut b, "poststart", &echo("post-start2"));
    b.hook("poststop", "/bin/false", &["false"]);
    sh_hook(&mut b, "poststop", &echo("post-stop1"));
    sh_hook(&mut b, "poststop", &echo("post-stop2"));
    let id = rt.id();
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "pre-start1\npre-start2\npost-start1\npost-start2\npost-stop1\npost-stop2\n"
    );
}

/// runtime-tools validation/hooks_stdin: each hook gets the container's
/// state on stdin: its id, bundle, annotations, the init's pid (but for
/// poststop), status created (prestart), running (poststart), and a
/// non-empty one for poststop.
#[test]
fn hooks_get_the_state_on_stdin() {
    let rt = Runtime::new("sc-hooks-stdin");
    let dir = rt.host_dir("hooks");
    let mut b = rt.bundle();
    b.args(&["true"])
        .annotation("org.opencontainers.runtime-tools", "hook stdin test");
    for kind in ["prestart", "poststart", "poststop"] {
        b.config
            .as_object_mut()
            .unwrap()
            .entry("hooks")
            .or_insert_with(|| json!({}))[kind] = json!([{
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("cat > {}", dir.join(kind).display())],
                "timeout": 1
        }]);
    }
    let id = rt.id();
    rt.create(&b, &id).ok();
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    rt.start(&id).ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
    for (kind, status) in [
        ("prestart", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let text = fs::read_to_string(dir.join(kind)).unwrap_or_default();
        let st: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{kind}: {e}: {text:?}"));
        assert_eq!(st["id"], id.as_str(), "{kind}: {st}");
        assert_eq!(st["bundle"], b.path_str(), "{kind}: {st}");
        assert_eq!(
            st["annotations"],
            json!({"org.opencontainers.runtime-tools": "hook stdin test"}),
            "{kind}: {st}"
        );
        assert_eq!(st["status"], status, "{kind}: {st}");
        if kind != "poststop" {
            assert_eq!(st["pid"].as_i64(), Some(pid), "{kind}: {st}");
        }
    }
}

/// runtime-tools validation/prestart_fail: a failing prestart hook makes
/// create fail, the user program never runs, the container is gone and (as
/// the lifecycle continues with its destruction) poststop hooks run.
#[test]
fn failing_prestart_hook_fails_create_and_runs_poststop() {
    let rt = Runtime::new("sc-prestart-fail");
    let dir = rt.host_dir("hooks");
    let mut b = rt.bundle();
    b.bind(&dir, "/out", false).sh("touch /out/output");
    b.hook("prestart", "/bin/false", &["false"]);
    let poststop = dir.join("poststop");
    sh_hook(&mut b, "poststop", &format!("cat > {}", poststop.display()));
    let id = rt.id();
    rt.create(&b, &id).failed().mentions_any(&["prestart"]);
    rt.assert_gone(&id);
    rt.start(&id).failed();
    assert!(!dir.join("output").exists(), "the user program ran");
    let st: Value = serde_json::from_str(&fs::read_to_string(&poststop).unwrap()).unwrap();
    assert_eq!(st["id"], id.as_str(), "{st}");
    assert_eq!(st["status"], "stopped", "{st}");
}

// ---------------------------------------------------------------------------
// mounts, devices, masked and read-only paths

/// runtime-tools validation/mounts (runtimetest's validatePosixMounts): the
/// spec's mounts exist with their type and source, in the listed order.
#[test]
fn mounts_in_listed_order_with_type_and_source() {
    let rt = Runtime::new("sc-mounts");
    let mut b = rt.bundle();
    b.mount(
        "/tmp",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=1k"],
    )
    .mount("/mnt/one", "tmpfs", "one-src", &["size=64k"])
    .mount("/mnt/one/two", "tmpfs", "two-src", &["size=64k"])
    .args(&["cat", "/proc/self/mountinfo"]);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    let entries = mountinfo_entries(&out.stdout);
    let mut at = 0;
    for m in b.config["mounts"].as_array().unwrap() {
        let want = (
            m["destination"].as_str().unwrap().to_string(),
            m["type"].as_str().unwrap().to_string(),
            m["source"].as_str().unwrap().to_string(),
        );
        if want.1 == "cgroup" {
            // A v1 host gets a tmpfs with the hierarchies under it (as runc).
            continue;
        }
        let found = entries[at..].iter().position(|e| *e == want);
        let Some(i) = found else {
            panic!("{want:?} missing or out of order in {entries:#?}");
        };
        at += i + 1;
    }
    let tmp = entries.iter().rfind(|e| e.0 == "/tmp").unwrap();
    assert_eq!(tmp.1, "tmpfs");
}

/// runtime-tools validation/linux_devices (runtimetest's
/// validateLinuxDevices): char, block and fifo nodes with the given numbers,
/// file mode and owner.
#[test]
fn linux_devices_have_type_numbers_mode_and_owner() {
    let rt = Runtime::new("sc-devices");
    let mut b = rt.bundle();
    b.config["linux"]["devices"] = json!([
        {"path": "/dev/test1", "type": "c", "major": 10, "minor": 666, "fileMode": 432, "uid": 1, "gid": 2},
        {"path": "/dev/test2", "type": "b", "major": 8, "minor": 666, "fileMode": 432, "uid": 0, "gid": 0},
        {"path": "/dev/test3", "type": "p", "major": 8, "minor": 666, "fileMode": 432},
        {"path": "/dev/sub/test4", "type": "u", "major": 1, "minor": 3, "fileMode": 420}
    ]);
    b.sh("for d in test1 test2 test3 sub/test4; do echo \"$d $(stat -c '%F %t:%T %a %u:%g' /dev/$d)\"; done");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            "test1 character special file a:29a 660 1:2",
            "test2 block special file 8:29a 660 0:0",
            "test3 fifo 0:0 660 0:0",
            "sub/test4 character special file 1:3 644 0:0",
        ],
        "{out:?}"
    );
}

/// Makes a node of `kind` (device 0:0) at `rel` in the rootfs.
fn node(b: &Bundle, rel: &str, kind: SFlag) {
    mknod(
        &b.rootfs().join(rel),
        kind,
        Mode::from_bits_truncate(0o666),
        0,
    )
    .unwrap();
}

/// The nested files, directories and device nodes runtime-tools'
/// linux_masked_paths and linux_readonly_paths make in the rootfs, under
/// `prefix` ("masked" or "readonly"); returns the container paths.
fn nested_targets(b: &Bundle, prefix: &str) -> Vec<String> {
    let dir = format!("{prefix}-dir");
    let sub = format!("{dir}/{prefix}-subdir");
    fs::create_dir_all(b.rootfs().join(&sub)).unwrap();
    b.write_file(&format!("{sub}/tmpfile"), "");
    for f in [
        format!("{prefix}-file"),
        format!("{dir}/{prefix}-file"),
        format!("{sub}/{prefix}-file"),
    ] {
        b.write_file(&f, "secrets");
    }
    node(b, &format!("{prefix}-chr"), SFlag::S_IFCHR);
    node(b, &format!("{prefix}-blk"), SFlag::S_IFBLK);
    node(b, &format!("{prefix}-fifo"), SFlag::S_IFIFO);
    [
        dir.clone(),
        format!("{prefix}-file"),
        sub.clone(),
        format!("{dir}/{prefix}-file"),
        format!("{sub}/{prefix}-file"),
        format!("{prefix}-chr"),
        format!("{prefix}-blk"),
        format!("{prefix}-fifo"),
    ]
    .into_iter()
    .map(|p| format!("/{p}"))
    .collect()
}

/// runtime-tools validation/linux_masked_paths: nested masked directories
/// and files, and masked char, block and fifo nodes, read as empty; a
/// relative masked path is an error.
#[test]
fn masked_paths_nested_and_device_nodes() {
    let rt = Runtime::new("sc-masked");
    let mut b = rt.bundle();
    let targets = nested_targets(&b, "masked");
    b.config["linux"]["maskedPaths"] = json!(targets);
    b.sh(
        "for f in /masked-file /masked-chr /masked-blk /masked-fifo; do \
            echo \"$f $(head -c 1 $f | wc -c)\"; done; \
          echo \"dir $(ls -A /masked-dir | wc -l)\"",
    );
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            "/masked-file 0",
            "/masked-chr 0",
            "/masked-blk 0",
            "/masked-fifo 0",
            "dir 0"
        ],
        "{out:?}"
    );
    // The rootfs itself is untouched.
    assert_eq!(
        fs::read_to_string(b.rootfs().join("masked-dir/masked-file")).unwrap(),
        "secrets"
    );

    b.config["linux"]["maskedPaths"] = json!(["masked-relpath"]);
    let id = rt.id();
    rt.create(&b, &id).failed().mentions_any(&["maskedPaths"]);
    rt.assert_gone(&id);
}

/// runtime-tools validation/linux_readonly_paths: nested read-only
/// directories and files refuse writes, read-only device nodes are read-only
/// mounts; a relative read-only path is an error.
#[test]
fn readonly_paths_nested_and_device_nodes() {
    let rt = Runtime::new("sc-readonly");
    let mut b = rt.bundle();
    let targets = nested_targets(&b, "readonly");
    b.config["linux"]["readonlyPaths"] = json!(targets);
    b.readonly_root(false)
        .sh("for f in /readonly-file /readonly-dir/readonly-file \
                  /readonly-dir/readonly-subdir/readonly-file; do \
           if echo x >> $f; then echo \"$f WRITABLE\"; else echo \"$f ro\"; fi; done 2>/dev/null; \
         for d in /readonly-dir /readonly-dir/readonly-subdir; do \
           if touch $d/new 2>/dev/null; then echo \"$d WRITABLE\"; else echo \"$d ro\"; fi; done; \
         for n in /readonly-chr /readonly-blk /readonly-fifo; do \
           echo \"$n $(grep \" $n \" /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1)\"; done; \
         if touch /elsewhere; then echo 'root rw'; fi");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            "/readonly-file ro",
            "/readonly-dir/readonly-file ro",
            "/readonly-dir/readonly-subdir/readonly-file ro",
            "/readonly-dir ro",
            "/readonly-dir/readonly-subdir ro",
            "/readonly-chr ro",
            "/readonly-blk ro",
            "/readonly-fifo ro",
            "root rw",
        ],
        "{out:?}"
    );
    assert_eq!(
        fs::read_to_string(b.rootfs().join("readonly-file")).unwrap(),
        "secrets"
    );

    b.config["linux"]["readonlyPaths"] = json!(["readonly-relpath"]);
    let id = rt.id();
    rt.create(&b, &id).failed().mentions_any(&["readonlyPaths"]);
    rt.assert_gone(&id);
}

// ---------------------------------------------------------------------------
// process

/// `/proc/self/limits` rows (soft, hard) by name, as `cat` sees them.
fn limits(text: &str, name: &str) -> (String, String) {
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    let mut f = line[name.len()..].split_whitespace();
    (f.next().unwrap().into(), f.next().unwrap().into())
}

/// runtime-tools validation/process_rlimits: every rlimit type given is set,
/// soft and hard.
#[test]
fn rlimits_of_several_types() {
    let rt = Runtime::new("sc-rlimits");
    let g: u64 = 1 << 30;
    let mut b = rt.bundle();
    b.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_AS", "hard": 2 * g, "soft": g},
        {"type": "RLIMIT_CORE", "hard": 4 * g, "soft": 3 * g},
        {"type": "RLIMIT_DATA", "hard": 6 * g, "soft": 5 * g},
        {"type": "RLIMIT_FSIZE", "hard": 8 * g, "soft": 7 * g},
        {"type": "RLIMIT_STACK", "hard": 10 * g, "soft": 9 * g},
        {"type": "RLIMIT_CPU", "hard": 120, "soft": 60},
        {"type": "RLIMIT_NOFILE", "hard": 4000, "soft": 3000}
    ]);
    b.args(&["cat", "/proc/self/limits"]);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    let s = |n: u64| n.to_string();
    for (name, soft, hard) in [
        ("Max address space", s(g), s(2 * g)),
        ("Max core file size", s(3 * g), s(4 * g)),
        ("Max data size", s(5 * g), s(6 * g)),
        ("Max file size", s(7 * g), s(8 * g)),
        ("Max stack size", s(9 * g), s(10 * g)),
        ("Max cpu time", s(60), s(120)),
        ("Max open files", s(3000), s(4000)),
    ] {
        assert_eq!(limits(&out.stdout, name), (soft, hard), "{name}: {out:?}");
    }
}

/// runtime-tools validation/process_rlimits_fail: an rlimit type the kernel
/// does not have is an error.
#[test]
fn unknown_rlimit_type_is_refused() {
    let rt = Runtime::new("sc-rlimit-fail");
    let mut b = rt.bundle();
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_TEST", "hard": 1024, "soft": 1024}]);
    let id = rt.id();
    rt.create(&b, &id).failed().mentions_any(&["RLIMIT_TEST"]);
    rt.assert_gone(&id);
}

/// runtime-tools validation/process_user: uid, gid, additional gids and
/// umask.
#[test]
fn user_ids_additional_gids_and_umask() {
    let rt = Runtime::new("sc-user");
    let mut b = rt.bundle();
    b.config["process"]["user"] = json!({"uid": 10, "gid": 10, "additionalGids": [5], "umask": 2});
    b.mount("/tmp", "tmpfs", "tmpfs", &["mode=1777"]).sh(
        "id -u; id -g; id -G; umask; touch /tmp/f; mkdir /tmp/d; stat -c '%a %u:%g' /tmp/f /tmp/d",
    );
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        ["10", "10", "10 5", "0002", "664 10:10", "775 10:10"],
        "{out:?}"
    );
}

/// runtime-tools validation/process_oom_score_adj (runtimetest's
/// validateOOMScoreAdj).
#[test]
fn oom_score_adj_is_applied() {
    let rt = Runtime::new("sc-oom-adj");
    let mut b = rt.bundle();
    b.config["process"]["oomScoreAdj"] = json!(100);
    b.args(&["cat", "/proc/self/oom_score_adj"]);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["100"], "{out:?}");
}

// ---------------------------------------------------------------------------
// namespaces

/// runtime-tools validation/linux_ns_path_type: a namespace path of another
/// namespace type is an error, before anything is made.
#[test]
fn namespace_path_of_another_type_is_refused() {
    let rt = Runtime::new("sc-ns-path-type");
    let me = std::process::id();
    for (kind, wrong) in [
        ("cgroup", "ipc"),
        ("ipc", "mnt"),
        ("mount", "net"),
        ("network", "pid"),
        ("pid", "user"),
        ("user", "uts"),
        ("uts", "cgroup"),
    ] {
        let mut b = rt.bundle();
        b.long_running()
            .namespace(kind, Some(&format!("/proc/{me}/ns/{wrong}")));
        if kind == "user" {
            b.uid_map(0, 100000, 65536).gid_map(0, 100000, 65536);
        }
        let id = rt.id();
        rt.create(&b, &id)
            .failed()
            .mentions_any(&[&format!("a {wrong} namespace")]);
        rt.assert_gone(&id);
    }
}

/// runtime-tools validation/linux_ns_itype asks that a config without a
/// mount namespace inherit the runtime's. Deliberately refused: the rootfs
/// would be built (and pivot_root'ed into) in the host's mount namespace;
/// runc refuses such configs too (masked paths need a private one). The
/// host's mounts stay as they were.
#[test]
fn no_mount_namespace_is_refused_and_host_untouched() {
    let rt = Runtime::new("sc-ns-nomount");
    let root_line = || {
        host_mountinfo()
            .into_iter()
            .find(|l| l.split(' ').nth(4) == Some("/"))
    };
    let before = root_line();
    let mut b = rt.bundle();
    b.long_running().remove_namespace("mount");
    let id = rt.id();
    rt.create(&b, &id)
        .failed()
        .mentions_any(&["mount namespace"]);
    rt.assert_gone(&id);
    assert_eq!(root_line(), before);
}
