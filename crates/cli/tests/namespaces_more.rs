//! More namespaces: time (with linux.timeOffsets), joining pid/ipc/uts
//! namespaces by path, domainname, linux.sysctl (applied inside, refused when
//! it would reach the host) and linux.rootfsPropagation.

mod common;

use std::fs;

use common::{Runtime, mounts_under, ns_link, require_private_ns, wait_file_contains};
use serde_json::json;

fn host_uptime() -> f64 {
    fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn time_namespace_offsets() {
    let rt = Runtime::new("nsm-time");
    let mut b = rt.bundle();
    b.namespace("time", None)
        .sh("cat /proc/uptime; readlink /proc/self/ns/time; cat /proc/self/timens_offsets");
    b.config["linux"]["timeOffsets"] = json!({
        "monotonic": {"secs": 86400, "nanosecs": 0},
        "boottime": {"secs": 86400, "nanosecs": 0}
    });
    let before = host_uptime();
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    let after = host_uptime();
    let lines = out.lines();
    assert!(lines.len() >= 4, "{out:?}");
    let inside: f64 = lines[0].split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        inside > before + 80000.0,
        "uptime inside {inside} vs host {before}: boottime offset not applied"
    );
    // Read before `after`, so it cannot exceed it by more than the offset.
    assert!(inside <= after + 86400.0 + 1.0, "{inside} vs {after}");
    assert_ne!(lines[1], ns_link(None, "time"), "no new time namespace");
    let offsets: Vec<Vec<&str>> = lines[2..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for clock in ["monotonic", "boottime"] {
        assert!(
            offsets.contains(&vec![clock, "86400", "0"]),
            "{clock} offset missing: {offsets:?}"
        );
    }
    rt.assert_gone(&id);
}

#[test]
fn join_pid_namespace_by_path() {
    let rt = Runtime::new("nsm-pid-join");
    let out = rt.host_dir("out");
    let mut a = rt.bundle();
    a.sh("echo marker-of-a > /dev/null; trap 'exit 0' TERM; sleep 100000 & wait");
    let (ida, pida) = rt.start_container(&a);

    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .namespace("pid", Some(&format!("/proc/{pida}/ns/pid")))
        .sh(
            "echo $$ > /out/self; ls /proc | grep -E '^[0-9]+$' > /out/procs; \
             tr '\\0' ' ' < /proc/1/cmdline > /out/one; echo done > /out/done; \
             trap 'exit 0' TERM; sleep 100000 & wait",
        );
    let (idb, pidb) = rt.start_container(&b);
    wait_file_contains(&out.join("done"), "done");

    let me = fs::read_to_string(out.join("self")).unwrap();
    assert_ne!(me.trim(), "1", "the joining init must not be pid 1");
    let procs = fs::read_to_string(out.join("procs")).unwrap();
    assert!(
        procs.lines().any(|l| l == "1"),
        "the first container's init is not visible: {procs}"
    );
    assert!(procs.lines().any(|l| l == me.trim()), "{procs}");
    let one = fs::read_to_string(out.join("one")).unwrap();
    assert!(one.contains("marker-of-a"), "pid 1 is not a's init: {one}");
    assert_eq!(ns_link(Some(pidb), "pid"), ns_link(Some(pida), "pid"));
    assert_ne!(ns_link(Some(pidb), "pid"), ns_link(None, "pid"));

    // b's processes live in a's pid namespace: b goes first.
    for id in [&idb, &ida] {
        rt.kill(id, "TERM").ok();
        rt.wait_status(id, "stopped");
        rt.delete(id).ok();
        rt.assert_gone(id);
    }
}

/// Keys (first column) of a /proc/sysvipc/shm listing.
fn shm_keys(listing: &str) -> Vec<i64> {
    listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn join_ipc_and_uts_namespaces_by_path() {
    let rt = Runtime::new("nsm-ipc-uts-join");
    let out = rt.host_dir("out");
    let mut a = rt.bundle();
    // busybox has no ipcmk: use the host's (util-linux) with its libraries.
    a.add_host_binary("/usr/bin/ipcmk");
    a.bind(&out, "/out", false).sh(&format!(
        "{}/usr/bin/ipcmk -M 2048 > /out/a.ipcmk 2>&1 || exit 1; cat /proc/sysvipc/shm > /out/a.shm; \
         echo ready > /out/a.ready; trap 'exit 0' TERM; sleep 100000 & wait",
        require_private_ns(&["ipc", "uts"])
    ));
    let a_host = a.hostname();
    let (ida, pida) = rt.start_container(&a);
    wait_file_contains(&out.join("a.ready"), "ready");

    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .set_hostname("")
        .namespace("ipc", Some(&format!("/proc/{pida}/ns/ipc")))
        .namespace("uts", Some(&format!("/proc/{pida}/ns/uts")))
        .sh(
            "cat /proc/sysvipc/shm > /out/b.shm; hostname > /out/b.host; echo done > /out/b.done; \
             trap 'exit 0' TERM; sleep 100000 & wait",
        );
    let (idb, pidb) = rt.start_container(&b);
    wait_file_contains(&out.join("b.done"), "done");

    let a_keys = shm_keys(&fs::read_to_string(out.join("a.shm")).unwrap());
    let b_shm = fs::read_to_string(out.join("b.shm")).unwrap();
    assert_eq!(a_keys.len(), 1, "a's segment");
    assert_eq!(
        shm_keys(&b_shm),
        a_keys,
        "b does not see a's segment: {b_shm}"
    );
    let host_keys = shm_keys(&fs::read_to_string("/proc/sysvipc/shm").unwrap());
    assert!(!host_keys.contains(&a_keys[0]), "a's segment on the host");
    let b_host = fs::read_to_string(out.join("b.host")).unwrap();
    assert_eq!(b_host.trim(), a_host, "b does not see a's hostname");
    assert_ne!(
        nix::unistd::gethostname().unwrap().to_string_lossy(),
        a_host
    );
    for kind in ["ipc", "uts"] {
        assert_eq!(
            ns_link(Some(pidb), kind),
            ns_link(Some(pida), kind),
            "{kind}"
        );
    }
    // b's other namespaces are its own.
    assert_ne!(ns_link(Some(pidb), "net"), ns_link(Some(pida), "net"));

    for id in [&idb, &ida] {
        rt.kill(id, "TERM").ok();
        rt.wait_status(id, "stopped");
        rt.delete(id).ok();
        rt.assert_gone(id);
    }
}

fn host_domainname() -> String {
    fs::read_to_string("/proc/sys/kernel/domainname").unwrap()
}

#[test]
fn domainname_in_new_uts_namespace() {
    let rt = Runtime::new("nsm-domainname");
    let before = host_domainname();
    let mut b = rt.bundle();
    b.sh("cat /proc/sys/kernel/domainname; hostname");
    b.config["domainname"] = json!("pea-domain.example");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["pea-domain.example", b.hostname().as_str()]);
    assert_eq!(host_domainname(), before);
    rt.assert_gone(&id);
}

/// Restores host sysctls on drop, should a broken runtime change them.
struct SysctlGuard(Vec<(String, String)>);

impl SysctlGuard {
    fn new(keys: &[&str]) -> Self {
        SysctlGuard(keys.iter().map(|k| (k.to_string(), sysctl(k))).collect())
    }
    #[track_caller]
    fn assert_unchanged(&self) {
        for (k, v) in &self.0 {
            assert_eq!(&sysctl(k), v, "host sysctl {k} changed");
        }
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        for (k, v) in &self.0 {
            if &sysctl(k) != v {
                let _ = fs::write(sysctl_path(k), v);
            }
        }
    }
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn sysctl(key: &str) -> String {
    fs::read_to_string(sysctl_path(key))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn sysctl_applied_inside_only() {
    let rt = Runtime::new("nsm-sysctl");
    let guard = SysctlGuard::new(&["net.ipv4.ip_forward", "kernel.shmmax"]);
    // The opposite of the host's, so that inheriting it would not pass.
    let forward = if sysctl("net.ipv4.ip_forward") == "1" {
        "0"
    } else {
        "1"
    };
    let mut b = rt.bundle();
    b.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax");
    b.config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": forward,
        "kernel.shmmax": "123456789"
    });
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), [forward, "123456789"]);
    guard.assert_unchanged();
    rt.assert_gone(&id);
}

/// A sysctl for a namespace the container shares with the host would change
/// the host: `create` refuses it. The value written is the host's own, so a
/// runtime that wrongly applies it changes nothing.
#[test]
fn sysctl_of_host_namespace_refused() {
    let rt = Runtime::new("nsm-sysctl-host");
    let host_net = format!("/proc/{}/ns/net", std::process::id());
    let cases = [
        ("network", None, "net.ipv4.ip_forward"),
        // Joining the host's own namespace by path is no better.
        (
            "network",
            Some(host_net.as_str()),
            "net.ipv4.conf.all.forwarding",
        ),
        ("ipc", None, "kernel.shmmax"),
        ("uts", None, "kernel.domainname"),
        // Not namespaced at all.
        ("", None, "vm.swappiness"),
    ];
    let guard = SysctlGuard::new(&cases.map(|c| c.2));
    for (ns, path, key) in cases {
        let mut b = rt.bundle();
        b.long_running();
        if !ns.is_empty() {
            b.remove_namespace(ns);
        }
        if let Some(p) = path {
            b.namespace(ns, Some(p));
        }
        if ns == "uts" {
            b.set_hostname("");
        }
        b.config["linux"]["sysctl"] = json!({ key: sysctl(key) });
        let id = rt.id();
        rt.create(&b, &id).failed().mentions_any(&[key]);
        rt.assert_gone(&id);
    }
    guard.assert_unchanged();
}

/// The optional fields of the mountinfo line of `/`.
fn root_propagation(mountinfo: &str) -> String {
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in {mountinfo}"));
    let fields: Vec<&str> = line.split(' ').collect();
    let end = fields.iter().position(|f| *f == "-").unwrap();
    fields[6..end].join(" ")
}

#[test]
fn rootfs_propagation_values() {
    let rt = Runtime::new("nsm-propagation");
    for value in [
        "private", "rprivate", "rslave", "slave", "shared", "rshared",
    ] {
        let mut b = rt.bundle();
        b.sh("cat /proc/self/mountinfo");
        b.config["linux"]["rootfsPropagation"] = json!(value);
        let id = rt.id();
        let out = rt.run(&b, &id).ok();
        let opt = root_propagation(&out.stdout);
        if value.ends_with("shared") {
            assert!(opt.contains("shared:"), "{value}: / is {opt:?}");
        }
        if value.ends_with("private") {
            assert!(opt.is_empty(), "{value}: / is {opt:?}");
        }
        rt.assert_gone(&id);
        let m = mounts_under(std::path::Path::new(b.path_str()));
        assert!(m.is_empty(), "{value}: host mounts {m:?}");
    }
}

#[test]
fn invalid_rootfs_propagation() {
    let rt = Runtime::new("nsm-propagation-bad");
    let mut b = rt.bundle();
    b.long_running();
    b.config["linux"]["rootfsPropagation"] = json!("rbogus");
    let id = rt.id();
    rt.create(&b, &id)
        .failed()
        .mentions_any(&["rootfsPropagation"]);
    rt.assert_gone(&id);
}
