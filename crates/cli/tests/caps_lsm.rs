//! Capabilities (all five sets, across the user switch, unknown names),
//! no_new_privileges for exec, and the LSM fields (process.apparmorProfile,
//! process.selinuxLabel, linux.mountLabel): refused with one clear line,
//! before anything is made, on a host without the LSM.

mod common;

use std::fs;
use std::path::Path;

use common::{Bundle, Out, Runtime, host_mounts_mentioning, runtime_is_runc};
use serde_json::{Value, json};

/// Capability numbers of the names these tests use.
fn cap_bit(name: &str) -> u32 {
    match name {
        "CAP_CHOWN" => 0,
        "CAP_KILL" => 5,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_RAW" => 13,
        "CAP_AUDIT_WRITE" => 29,
        other => panic!("no bit for {other}"),
    }
}

/// The /proc/PID/status hex mask of `caps`.
fn mask(caps: &[&str]) -> String {
    format!(
        "{:016x}",
        caps.iter().fold(0u64, |m, c| m | 1 << cap_bit(c))
    )
}

/// Prints the five capability lines and NoNewPrivs of /proc/self/status, tabs removed.
const STATUS: &str = "for k in CapInh CapPrm CapEff CapBnd CapAmb NoNewPrivs; do \
                      grep \"^$k:\" /proc/self/status | tr -d '\\t'; done";

fn set_caps(b: &mut Bundle, sets: &[(&str, &[&str])]) {
    let mut caps = json!({});
    for (set, list) in sets {
        caps[*set] = json!(list);
    }
    b.config["process"]["capabilities"] = caps;
}

/// Status lines expected for the given sets as seen after execve.
fn expected(inh: &[&str], prm: &[&str], eff: &[&str], bnd: &[&str], amb: &[&str]) -> Vec<String> {
    vec![
        format!("CapInh:{}", mask(inh)),
        format!("CapPrm:{}", mask(prm)),
        format!("CapEff:{}", mask(eff)),
        format!("CapBnd:{}", mask(bnd)),
        format!("CapAmb:{}", mask(amb)),
        "NoNewPrivs:1".to_string(),
    ]
}

/// Five different sets for root. After its execve the kernel gives root
/// permitted = bounding | inheritable, cut down to the old permitted set
/// by no_new_privileges, and effective = permitted: what the spec's
/// effective set does for root is only to cover the runtime's own steps.
#[test]
fn all_five_capability_sets_for_root() {
    let rt = Runtime::new("caps-root-sets");
    let bnd = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_AUDIT_WRITE",
        "CAP_NET_RAW",
    ];
    let prm = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_RAW",
    ];
    let eff = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let inh = ["CAP_KILL", "CAP_CHOWN"];
    let amb = ["CAP_KILL"];
    let mut b = rt.bundle();
    set_caps(
        &mut b,
        &[
            ("bounding", &bnd),
            ("permitted", &prm),
            ("effective", &eff),
            ("inheritable", &inh),
            ("ambient", &amb),
        ],
    );
    b.sh(STATUS);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        expected(&inh, &prm, &prm, &bnd, &amb),
        "{out:?}"
    );
}

/// uid 1000 keeps the ambient set across the user switch (keep-caps) and
/// the execve: it can bind port 80, and without the ambient cap it cannot.
#[test]
fn ambient_capabilities_survive_the_switch_to_a_non_root_user() {
    let rt = Runtime::new("caps-ambient");
    let bnd = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_AUDIT_WRITE",
    ];
    let prm = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let eff = ["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let inh = ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"];
    let amb = ["CAP_NET_BIND_SERVICE"];
    let port80 = "nc -l -p 80 >/dev/null 2>&1 & sleep 0.5; \
                  if grep -qs ':0050 [0-9A-F]*:0000 0A' /proc/net/tcp /proc/net/tcp6; \
                  then echo port80=bound; else echo port80=refused; fi; kill $! 2>/dev/null; \
                  echo uid=$(id -u)";
    let script = format!("{STATUS}; {port80}");
    let sets: [(&str, &[&str]); 5] = [
        ("bounding", &bnd),
        ("permitted", &prm),
        ("effective", &eff),
        ("inheritable", &inh),
        ("ambient", &amb),
    ];
    // A non-root process without file capabilities: permitted and effective
    // are the ambient set after execve.
    let mut want = expected(&inh, &amb, &amb, &bnd, &amb);
    want.extend(["port80=bound".to_string(), "uid=1000".to_string()]);

    let mut b = rt.bundle();
    set_caps(&mut b, &sets);
    b.user(1000, 1000).sh(&script);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), want, "{out:?}");

    // The same through exec --process of a running container.
    let mut b = rt.bundle();
    b.long_running();
    let (id, _) = rt.start_container(&b);
    let mut process = json!({
        "user": {"uid": 1000, "gid": 1000},
        "args": ["sh", "-c", script],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
        "noNewPrivileges": true,
        "capabilities": {}
    });
    for (set, list) in sets {
        process["capabilities"][set] = json!(list);
    }
    let path = rt.host_dir("process").join("process.json");
    fs::write(&path, process.to_string()).unwrap();
    let out = rt.exec(&["--process", path.to_str().unwrap(), &id]).ok();
    assert_eq!(out.lines(), want, "{out:?}");

    // Control: without the ambient capability uid 1000 has none.
    process["capabilities"]["ambient"] = json!([]);
    fs::write(&path, process.to_string()).unwrap();
    let out = rt.exec(&["--process", path.to_str().unwrap(), &id]).ok();
    let mut want = expected(&inh, &[], &[], &bnd, &[]);
    want.extend(["port80=refused".to_string(), "uid=1000".to_string()]);
    assert_eq!(out.lines(), want, "{out:?}");
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

#[test]
fn unknown_capability_is_one_clear_error() {
    if runtime_is_runc() {
        // runc 1.1 warns about unknown capabilities and goes on without them.
        return;
    }
    let rt = Runtime::new("caps-unknown");
    let mut b = rt.bundle();
    let marker = rt.host_dir("marker");
    b.bind(&marker, "/marker", false)
        .sh("touch /marker/ran; sleep 100000");
    b.config["process"]["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .push(json!("CAP_PEA_BOGUS"));
    let id = rt.id();
    rt.create(&b, &id).failed().mentions_any(&["CAP_PEA_BOGUS"]);
    assert_nothing_left(&rt, &id, &b);
    rt.start(&id).failed();
    assert!(!marker.join("ran").exists(), "the user process ran");

    // exec --cap with an unknown name: refused, the container unaffected.
    let mut b = rt.bundle();
    b.long_running();
    let (id, _) = rt.start_container(&b);
    rt.exec(&["--cap", "CAP_PEA_BOGUS", &id, "true"])
        .failed()
        .mentions_any(&["CAP_PEA_BOGUS"]);
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

/// `exec --no-new-privs` and a process.json's noNewPrivileges set
/// NoNewPrivs for the exec'd process of a container that runs without it.
#[test]
fn no_new_privileges_for_exec() {
    let rt = Runtime::new("caps-nnp-exec");
    let mut b = rt.bundle();
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.long_running();
    let (id, _) = rt.start_container(&b);
    let nnp = ["grep", "^NoNewPrivs:", "/proc/self/status"];
    let norm = |o: Out| o.stdout.replace(['\t', ' '], "").trim().to_string();
    let mut args = vec![id.as_str()];
    args.extend(nnp);
    assert_eq!(norm(rt.exec(&args).ok()), "NoNewPrivs:0");
    let mut args = vec!["--no-new-privs", id.as_str()];
    args.extend(nnp);
    assert_eq!(norm(rt.exec(&args).ok()), "NoNewPrivs:1");
    let process = json!({
        "user": {"uid": 0, "gid": 0},
        "args": nnp,
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
        "noNewPrivileges": true
    });
    let path = rt.host_dir("process").join("process.json");
    fs::write(&path, process.to_string()).unwrap();
    let out = rt.exec(&["--process", path.to_str().unwrap(), &id]).ok();
    assert_eq!(norm(out), "NoNewPrivs:1");
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

// ---------------------------------------------------------------------------
// LSM fields

#[track_caller]
fn assert_nothing_left(rt: &Runtime, id: &str, b: &Bundle) {
    rt.assert_gone(id);
    let m = host_mounts_mentioning(b.path_str());
    assert!(m.is_empty(), "host mounts naming the bundle: {m:?}");
}

fn host_has_apparmor() -> bool {
    fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.starts_with('Y'))
        || lsm_listed("apparmor")
}

fn host_has_selinux() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists() || lsm_listed("selinux")
}

fn lsm_listed(name: &str) -> bool {
    fs::read_to_string("/sys/kernel/security/lsm")
        .is_ok_and(|s| s.trim().split(',').any(|l| l == name))
}

/// `create` of a bundle asking for an LSM the host lacks: one line naming the
/// field and the LSM, nothing made, and nothing runs.
#[track_caller]
fn lsm_create_refused(rt: &Runtime, set: impl Fn(&mut Value), needles: &[&str]) {
    let mut b = rt.bundle();
    let marker = rt.host_dir("marker");
    b.bind(&marker, "/marker", false)
        .sh("touch /marker/ran; sleep 100000");
    set(&mut b.config);
    let id = rt.id();
    let out = rt.create(&b, &id).failed();
    // (runc refuses too, in words of its own.)
    if !runtime_is_runc() {
        for n in needles {
            assert!(out.stderr.contains(n), "stderr should name {n:?}: {out:?}");
        }
        assert!(out.stderr.contains("not enabled on this host"), "{out:?}");
    }
    assert_nothing_left(rt, &id, &b);
    rt.start(&id).failed();
    assert!(!marker.join("ran").exists(), "the user process ran");
}

/// An exec refused with one line naming `field` (runc: refused, in its words).
#[track_caller]
fn exec_refused(out: Out, field: &str) {
    if runtime_is_runc() {
        assert!(!out.success(), "{out:?}");
    } else {
        out.failed().mentions_any(&[field]);
    }
}

#[test]
fn apparmor_profile_without_apparmor_is_refused() {
    if host_has_apparmor() {
        eprintln!("skipped: this host runs AppArmor");
        return;
    }
    let rt = Runtime::new("lsm-apparmor");
    lsm_create_refused(
        &rt,
        |c| c["process"]["apparmorProfile"] = json!("pea-test-profile"),
        &["process.apparmorProfile", "pea-test-profile", "AppArmor"],
    );

    // "unconfined" asks for nothing: accepted (runc 1.1 refuses it).
    if !runtime_is_runc() {
        let mut b = rt.bundle();
        b.config["process"]["apparmorProfile"] = json!("unconfined");
        b.sh("echo ran");
        let id = rt.id();
        assert_eq!(rt.run(&b, &id).ok().lines(), ["ran"]);
    }

    // exec with a profile: refused, the container unaffected.
    let mut b = rt.bundle();
    b.long_running();
    let (id, _) = rt.start_container(&b);
    let ps_before = rt.cmd(&["ps", "--format", "json", &id]).ok().stdout;
    let process = json!({
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo ran"],
        "cwd": "/",
        "apparmorProfile": "pea-test-profile"
    });
    let path = rt.host_dir("process").join("process.json");
    fs::write(&path, process.to_string()).unwrap();
    exec_refused(
        rt.exec(&["--process", path.to_str().unwrap(), &id]),
        "process.apparmorProfile",
    );
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    let ps_after = rt.cmd(&["ps", "--format", "json", &id]).ok().stdout;
    assert_eq!(ps_before, ps_after);
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

#[test]
fn selinux_labels_without_selinux_are_refused() {
    if host_has_selinux() {
        eprintln!("skipped: this host runs SELinux");
        return;
    }
    let rt = Runtime::new("lsm-selinux");
    let label = "system_u:system_r:container_t:s0:c1,c2";
    lsm_create_refused(
        &rt,
        |c| c["process"]["selinuxLabel"] = json!(label),
        &["process.selinuxLabel", label, "SELinux"],
    );
    let mount_label = "system_u:object_r:container_file_t:s0:c1,c2";
    lsm_create_refused(
        &rt,
        |c| c["linux"]["mountLabel"] = json!(mount_label),
        &["linux.mountLabel", mount_label, "SELinux"],
    );

    let mut b = rt.bundle();
    b.long_running();
    let (id, _) = rt.start_container(&b);
    let process = json!({
        "user": {"uid": 0, "gid": 0},
        "args": ["true"],
        "cwd": "/",
        "selinuxLabel": label
    });
    let path = rt.host_dir("process").join("process.json");
    fs::write(&path, process.to_string()).unwrap();
    exec_refused(
        rt.exec(&["--process", path.to_str().unwrap(), &id]),
        "process.selinuxLabel",
    );
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

/// On a host with AppArmor, a container asking for "unconfined" runs unconfined.
#[test]
fn apparmor_unconfined_is_applied_when_present() {
    if !host_has_apparmor() {
        eprintln!("skipped: this host does not run AppArmor");
        return;
    }
    let rt = Runtime::new("lsm-aa-unconfined");
    let mut b = rt.bundle();
    b.config["process"]["apparmorProfile"] = json!("unconfined");
    b.sh("cat /proc/self/attr/apparmor/current 2>/dev/null || cat /proc/self/attr/current");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["unconfined"], "{out:?}");
}
