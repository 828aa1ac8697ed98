//! Namespace isolation: pid, uts, mount, ipc, network (new and joined by path), user, cgroup.

mod common;

use std::fs;

use common::{
    Runtime, host_mounts_mentioning, mounts_under, ns_link, proc_status, require_private_ns,
    wait_file_contains,
};

#[test]
fn pid_namespace() {
    let rt = Runtime::new("ns-pid");
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .sh("echo $$ > /out/pid; trap 'exit 0' TERM; sleep 100000 & wait");
    let (id, pid) = rt.start_container(&b);
    let inside = wait_file_contains(&out.join("pid"), "\n");
    assert_eq!(inside.trim(), "1", "init must be PID 1 inside");
    assert_ne!(pid, 1, "host pid of the container's init");
    assert_ne!(ns_link(Some(pid), "pid"), ns_link(None, "pid"));
    rt.kill(&id, "KILL").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn run_sees_itself_as_pid_1() {
    let rt = Runtime::new("ns-pid-run");
    let mut b = rt.bundle();
    b.sh("echo $$");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["1"], "{out:?}");
}

#[test]
fn namespace_inodes_differ_from_host() {
    let rt = Runtime::new("ns-inodes");
    let mut b = rt.bundle();
    b.long_running();
    let (id, pid) = rt.start_container(&b);
    for kind in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        assert_ne!(
            ns_link(Some(pid), kind),
            ns_link(None, kind),
            "{kind} namespace not unshared"
        );
    }
    // No user namespace was requested.
    assert_eq!(ns_link(Some(pid), "user"), ns_link(None, "user"));
    rt.cmd(&["delete", "--force", &id]).ok();
    rt.assert_gone(&id);
}

/// Restores the host's hostname on drop, should a broken runtime leak a change.
struct HostnameGuard(std::ffi::OsString);

impl Drop for HostnameGuard {
    fn drop(&mut self) {
        if nix::unistd::gethostname().ok().as_ref() != Some(&self.0) {
            let _ = nix::unistd::sethostname(&self.0);
        }
    }
}

#[test]
fn hostname_isolated() {
    let rt = Runtime::new("ns-uts");
    let host_before = nix::unistd::gethostname().unwrap();
    let _guard = HostnameGuard(host_before.clone());
    let mut b = rt.bundle();
    let script = format!(
        "hostname; {}hostname changed-inside 2>&1; true",
        require_private_ns(&["uts"])
    );
    b.set_hostname("pea-uts-test").sh(&script);
    b.add_caps(&["CAP_SYS_ADMIN"]);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines().first().map(String::as_str),
        Some("pea-uts-test"),
        "{out:?}"
    );
    assert_eq!(nix::unistd::gethostname().unwrap(), host_before);
}

#[test]
fn mounts_invisible_on_host() {
    let rt = Runtime::new("ns-mnt");
    let out = rt.host_dir("out");
    let id = rt.id();
    let (cfg_src, own_src) = (format!("peacfg-{id}"), format!("peaown-{id}"));
    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .mount("/data", "tmpfs", &cfg_src, &["nosuid", "size=1m"])
        .add_caps(&["CAP_SYS_ADMIN"])
        .sh(&format!(
            "{}mount -t tmpfs {own_src} /tmp || exit 1; grep pea /proc/self/mountinfo > /out/inside; \
             echo ready > /out/ready; trap 'exit 0' TERM; sleep 100000 & wait",
            require_private_ns(&["mnt"])
        ));
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    wait_file_contains(&out.join("ready"), "ready");
    let inside = fs::read_to_string(out.join("inside")).unwrap();
    assert!(
        inside.contains(&cfg_src),
        "config tmpfs missing inside: {inside}"
    );
    assert!(
        inside.contains(&own_src),
        "container's tmpfs missing inside: {inside}"
    );
    for src in [&cfg_src, &own_src] {
        let m = host_mounts_mentioning(src);
        assert!(m.is_empty(), "container mount visible on the host: {m:?}");
    }
    let m = mounts_under(rt.base());
    assert!(m.is_empty(), "host mounts under the test dir: {m:?}");
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

/// A SysV shm segment created on the host, removed on drop.
struct HostShm(i32, i32);

impl HostShm {
    fn new() -> Self {
        let key = 0x5ea0_0000 | (std::process::id() as i32 & 0xffff);
        let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        HostShm(key, id)
    }
}

impl Drop for HostShm {
    fn drop(&mut self) {
        unsafe { libc::shmctl(self.1, libc::IPC_RMID, std::ptr::null_mut()) };
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
fn sysv_ipc_isolated() {
    let rt = Runtime::new("ns-ipc");
    let host_shm = HostShm::new();
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    // busybox has no ipcmk: use the host's (util-linux) with its libraries.
    b.add_host_binary("/usr/bin/ipcmk");
    b.bind(&out, "/out", false).sh(&format!(
        "{}/usr/bin/ipcmk -M 1024 > /out/ipcmk 2>&1 || exit 1; cat /proc/sysvipc/shm > /out/inside; \
         echo ready > /out/ready; trap 'exit 0' TERM; sleep 100000 & wait",
        require_private_ns(&["ipc"])
    ));
    let (id, _pid) = rt.start_container(&b);
    wait_file_contains(&out.join("ready"), "ready");
    let inside = fs::read_to_string(out.join("inside")).unwrap();
    let inside_keys = shm_keys(&inside);
    assert_eq!(
        inside_keys.len(),
        1,
        "expected only the container's segment inside: {inside}"
    );
    assert!(
        !inside_keys.contains(&(host_shm.0 as i64)),
        "host segment visible inside: {inside}"
    );
    let host = fs::read_to_string("/proc/sysvipc/shm").unwrap();
    assert!(shm_keys(&host).contains(&(host_shm.0 as i64)));
    assert!(
        !shm_keys(&host).contains(&inside_keys[0]),
        "container segment {} visible on the host: {host}",
        inside_keys[0]
    );
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn new_network_namespace_has_only_lo() {
    let rt = Runtime::new("ns-net");
    let mut b = rt.bundle();
    b.sh("ls /sys/class/net; echo --; tail -n +3 /proc/net/dev | cut -d: -f1");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["lo", "--", "lo"], "{out:?}");
}

#[test]
fn join_network_namespace_by_path() {
    let rt = Runtime::new("ns-net-join");
    let out = rt.host_dir("out");
    let mut a = rt.bundle();
    a.bind(&out, "/out", false).add_caps(&["CAP_NET_ADMIN"]).sh(&format!(
        "{}ip addr add 10.123.45.67/32 dev lo && ip link set lo up && readlink /proc/self/ns/net > /out/a; \
         trap 'exit 0' TERM; sleep 100000 & wait",
        require_private_ns(&["net"])
    ));
    let (ida, pida) = rt.start_container(&a);
    let a_ns = wait_file_contains(&out.join("a"), "net:");

    let mut b = rt.bundle();
    b.bind(&out, "/out", false)
        .namespace("network", Some(&format!("/proc/{pida}/ns/net")))
        .sh(
            "ip addr show lo > /out/b.addr; readlink /proc/self/ns/net > /out/b; \
             trap 'exit 0' TERM; sleep 100000 & wait",
        );
    let (idb, pidb) = rt.start_container(&b);
    let b_ns = wait_file_contains(&out.join("b"), "net:");

    assert_eq!(
        a_ns.trim(),
        b_ns.trim(),
        "namespace links seen from inside differ"
    );
    assert_eq!(ns_link(Some(pida), "net"), ns_link(Some(pidb), "net"));
    assert_eq!(ns_link(Some(pida), "net"), a_ns.trim());
    assert_ne!(ns_link(Some(pidb), "net"), ns_link(None, "net"));
    // The other namespaces are still private to each container.
    assert_ne!(ns_link(Some(pida), "uts"), ns_link(Some(pidb), "uts"));
    let addr = fs::read_to_string(out.join("b.addr")).unwrap();
    assert!(
        addr.contains("10.123.45.67"),
        "b does not see a's address: {addr}"
    );

    for id in [&idb, &ida] {
        rt.kill(id, "TERM").ok();
        rt.wait_status(id, "stopped");
        rt.delete(id).ok();
        rt.assert_gone(id);
    }
}

#[test]
fn user_namespace_maps_root() {
    let rt = Runtime::new("ns-user");
    let out = rt.host_dir("out");
    let mut b = rt.bundle();
    b.namespace("user", None)
        .uid_map(0, 100000, 65536)
        .gid_map(0, 100000, 65536)
        .bind(&out, "/out", false)
        .sh("id -u > /out/id; id -g >> /out/id; trap 'exit 0' TERM; sleep 100000 & wait");
    b.chown_rootfs(100000, 100000);
    let (id, pid) = rt.start_container(&b);
    let ids = wait_file_contains(&out.join("id"), "\n");
    let ids: Vec<&str> = ids.lines().collect();
    assert_eq!(ids, ["0", "0"], "uid/gid inside");
    let uid = proc_status(pid, "Uid");
    let gid = proc_status(pid, "Gid");
    assert_eq!(
        uid.split_whitespace().next(),
        Some("100000"),
        "host Uid: {uid}"
    );
    assert_eq!(
        gid.split_whitespace().next(),
        Some("100000"),
        "host Gid: {gid}"
    );
    assert_ne!(ns_link(Some(pid), "user"), ns_link(None, "user"));
    let map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let map: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(map, ["0", "100000", "65536"]);
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}
