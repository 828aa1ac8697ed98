//! Networking of `peapod run` against real CNI plugins: published ports,
//! two containers on the default bridge, joining another container's
//! namespaces, a busy port, and 100 create/remove cycles that must leak
//! nothing (leases, veths, netns files, mounts, cgroups, processes).

mod peapod_common;

use std::io::{Read, Write};
use std::time::Duration;

use peapod_common::{Peapod, TIMEOUT, free_port, have_cni, usable, wait_for};

fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn published_port_is_reachable_on_localhost() {
    if !usable() || !have_cni() {
        return;
    }
    let p = Peapod::new("port");
    let name = p.name("web");
    let port = free_port();
    let id = p.run_d(&[
        "--name",
        &name,
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        "mkdir -p /www && echo hello-published > /www/index.html && httpd -f -p 80 -h /www",
    ]);
    assert!(
        wait_for(TIMEOUT, || http_get(port)
            .is_some_and(|r| r.contains("hello-published"))),
        "GET 127.0.0.1:{port}: {:?}",
        http_get(port)
    );
    // The same port again: one clear error, exit 125, nothing left.
    let other = p.name("busy");
    let (code, line) = p.fails(&[
        "run",
        "--name",
        &other,
        "-p",
        &format!("{port}:80"),
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{line}");
    assert!(line.contains(&port.to_string()), "{line}");
    assert!(p.id_of(&other).is_none());
    assert_eq!(p.ids().len(), 1, "{:?}", p.ids());
    // A failure after the network attachment (the bundle's user lookup)
    // undoes it.
    let (code, line) = p.fails(&["run", "-u", "no-such-user", "busybox", "true"]);
    assert_eq!(code, 125, "{line}");
    assert_eq!(p.ids().len(), 1, "{:?}", p.ids());
    let netns: Vec<String> = std::fs::read_dir(p.run_root.join("netns"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        netns,
        std::slice::from_ref(&id),
        "only the web's namespace is left"
    );
    p.ok(&["rm", "-f", &name]);
    assert!(
        wait_for(TIMEOUT, || http_get(port).is_none()),
        "port {port} still answers after rm"
    );
    let left = p.leftovers(&id);
    assert!(left.is_empty(), "{left:?}");
}

fn ipv4_of(p: &Peapod, name: &str) -> String {
    let out = p.ok(&["exec", name, "ip", "-4", "addr", "show", "eth0"]);
    out.lines()
        .find_map(|l| l.trim().strip_prefix("inet "))
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no IPv4 address on eth0: {out}"))
        .to_string()
}

#[test]
fn two_containers_on_the_default_bridge_ping_each_other() {
    if !usable() || !have_cni() {
        return;
    }
    let p = Peapod::new("ping");
    let a = p.name("a");
    let b = p.name("b");
    p.run_d(&["--name", &a, "busybox", "sleep", "1000"]);
    p.run_d(&["--name", &b, "busybox", "sleep", "1000"]);
    let (ip_a, ip_b) = (ipv4_of(&p, &a), ipv4_of(&p, &b));
    assert_ne!(ip_a, ip_b);
    for (from, to) in [(&a, &ip_b), (&b, &ip_a)] {
        let (code, out, err) = p.code(&["exec", from, "ping", "-c", "1", "-W", "3", to]);
        assert_eq!(code, 0, "{from} -> {to}: {out} {err}");
        assert!(out.contains("1 packets received"), "{out}");
    }
    // --network none has only loopback.
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
}

fn ns_inode(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn joining_another_containers_namespaces() {
    if !usable() {
        return;
    }
    let p = Peapod::new("join");
    let x = p.name("x");
    p.run_d(&[
        "--name",
        &x,
        "--network",
        "none",
        "busybox",
        "sleep",
        "4321",
    ]);
    let joiner = p.name("y");
    let ns = format!("container:{x}");
    p.run_d(&[
        "--name", &joiner, "--net", &ns, "--ipc", &ns, "--pid", &ns, "busybox", "sleep", "1000",
    ]);
    let ps = p.ok(&["exec", &joiner, "ps"]);
    assert!(ps.contains("sleep 4321"), "X's sleep is visible: {ps}");
    let pid_of = |n: &str| p.record(n)["state"]["pid"].as_i64().expect("a pid");
    let (px, py) = (pid_of(&x), pid_of(&joiner));
    for kind in ["net", "ipc", "pid"] {
        assert_eq!(ns_inode(px, kind), ns_inode(py, kind), "{kind} shared");
    }
    for kind in ["mnt", "uts"] {
        assert_ne!(ns_inode(px, kind), ns_inode(py, kind), "{kind} private");
    }
    // A foreground run sees it too.
    let out = p.ok(&[
        "run",
        "--rm",
        "--pid",
        &format!("container:{x}"),
        "--network",
        "none",
        "busybox",
        "ps",
    ]);
    assert!(out.contains("sleep 4321"), "{out}");
    // Joining a container that does not run is an error.
    let stopped = p.name("stopped");
    p.ok(&["create", "--name", &stopped, "--network", "none", "busybox"]);
    let (code, line) = p.fails(&[
        "run",
        "--rm",
        "--net",
        &format!("container:{stopped}"),
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{line}");
}

#[test]
fn hundred_create_rm_cycles_leak_nothing() {
    if !usable() || !have_cni() {
        return;
    }
    let p = Peapod::new("leak");
    // The image and the default network exist before counting.
    p.ok(&["run", "--rm", "busybox", "true"]);
    let veths_before = veths();
    let mut ids = Vec::new();
    for i in 0..100 {
        let name = p.name(&format!("n{i}"));
        let id = if i % 2 == 0 {
            p.ok(&["create", "--name", &name, "busybox", "true"])
                .trim()
                .to_string()
        } else {
            p.run_d(&["--name", &name, "busybox", "sleep", "1000"])
        };
        assert_eq!(id.len(), 64, "{id}");
        p.ok(&["rm", "-f", &name]);
        ids.push(id);
    }
    assert!(p.ids().is_empty(), "records left: {:?}", p.ids());
    for id in &ids {
        let left = p.leftovers(id);
        assert!(left.is_empty(), "container {id} left {left:?}");
    }
    let netns: Vec<_> = std::fs::read_dir(p.run_root.join("netns"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(netns.is_empty(), "{netns:?}");
    assert!(p.mounts().is_empty(), "{:?}", p.mounts());
    // Other tests may add veths meanwhile; ours are gone once every
    // container is: wait for the count to come back.
    assert!(
        wait_for(Duration::from_secs(60), || veths() <= veths_before),
        "veths: {} before, {} after",
        veths_before,
        veths()
    );
}

fn veths() -> usize {
    std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("veth"))
        .count()
}

/// Docker gives `--ipc container:X` X's /dev/shm too (POSIX shared memory
/// lives there). peapod joins the IPC namespace only; the fix needs a
/// host-side shm tmpfs per shareable container, bound into both.
#[test]
fn ipc_container_shares_dev_shm() {
    if !usable() {
        return;
    }
    let p = Peapod::new("shm");
    let x = p.name("x");
    p.run_d(&[
        "--name",
        &x,
        "--ipc",
        "shareable",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo shm-data > /dev/shm/f; sleep 1000",
    ]);
    assert!(wait_for(TIMEOUT, || p
        .code(&["exec", &x, "cat", "/dev/shm/f"])
        .0
        == 0));
    let out = p.ok(&[
        "run",
        "--rm",
        "--ipc",
        &format!("container:{x}"),
        "--network",
        "none",
        "busybox",
        "cat",
        "/dev/shm/f",
    ]);
    assert_eq!(out, "shm-data\n");
}
