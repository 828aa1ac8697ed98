//! Networking of `peapod run` against real CNI plugins: published ports,
//! two containers on the default bridge, joining another container's
//! namespaces, a busy port, a created network's host rules (once per network,
//! gone with `network rm`), and 100 create/remove cycles that must leak
//! nothing (leases, veths, netns files, mounts, cgroups, processes).

mod peapod_common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use peapod_common::{
    BIN, CMD_TIMEOUT, Peapod, TIMEOUT, free_port, have_cni, output_within, usable, wait_for,
};

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

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A test's own network config dir, network and host interface (a veth pair
/// on the host: this kernel may lack the dummy driver);
/// removed on drop (declare it before the `Peapod`, so its containers go
/// first).
struct OwnNetwork {
    config: tempfile::TempDir,
    root: PathBuf,
    run_root: PathBuf,
    name: String,
    bridge: String,
    subnet: String,
    host_if: String,
}

impl OwnNetwork {
    fn new(p: &Peapod) -> OwnNetwork {
        let pid = std::process::id();
        let (_, routes) = sh("ip", &["-4", "route", "show", "table", "all"]);
        let y = (0..250)
            .map(|i| 1 + (pid + i) % 250)
            .find(|y| !routes.contains(&format!("10.247.{y}.")))
            .expect("a free 10.247.Y.0/24");
        OwnNetwork {
            config: tempfile::tempdir().unwrap(),
            root: p.root.clone(),
            run_root: p.run_root.clone(),
            name: format!("it-net-{pid}"),
            bridge: format!("pdc{}", pid % 1_000_000),
            subnet: format!("10.247.{y}.0/24"),
            host_if: format!("pdd{}", pid % 1_000_000),
        }
    }

    /// `peapod ARGS` with the test's roots and this config dir.
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("PEAPOD_ROOT", &self.root)
            .env("PEAPOD_RUN_ROOT", &self.run_root)
            .env("PEAPOD_CNI_CONFIG_DIR", self.config.path())
            .env_remove("PEAPOD_STORAGE_DRIVER");
        output_within(c, None, CMD_TIMEOUT)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "peapod {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for OwnNetwork {
    fn drop(&mut self) {
        if self
            .config
            .path()
            .join(format!("{}.conflist", self.name))
            .exists()
        {
            let out = self.run(&["network", "rm", &self.name]);
            if !out.status.success() {
                eprintln!("network rm {}: {out:?}", self.name);
            }
        }
        // Deleting one end of a veth pair deletes both.
        for dev in [&self.bridge, &self.host_if] {
            if Path::new("/sys/class/net").join(dev).exists() {
                let _ = sh("ip", &["link", "delete", dev]);
            }
        }
    }
}

#[test]
fn a_networks_host_rules_exist_once_and_network_rm_removes_them() {
    if !usable() || !have_cni() {
        return;
    }
    let p = Peapod::new("hostrules");
    let net = OwnNetwork::new(&p);
    let p = p; // dropped before `net`: containers go first
    let (name, bridge, subnet) = (&net.name, &net.bridge, &net.subnet);
    net.ok(&[
        "network", "create", "--subnet", subnet, "--bridge", bridge, name,
    ]);
    let (a, b) = (p.name("a"), p.name("b"));
    for c in [&a, &b] {
        let id = net.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            name,
            "busybox",
            "sleep",
            "1000",
        ]);
        assert_eq!(id.trim().len(), 64, "{id}");
    }

    // lo is up inside, with 127.0.0.1.
    let lo = net.ok(&["exec", &a, "ip", "-o", "addr", "show", "lo"]);
    assert!(lo.contains("inet 127.0.0.1/8"), "{lo}");
    let link = net.ok(&["exec", &a, "ip", "-o", "link", "show", "lo"]);
    assert!(link.contains(",UP"), "{link}");

    // On the host: one MASQUERADE rule for the subnet (two containers), the
    // FORWARD accept rules.
    let chain = format!("PEAPOD-BR-{bridge}");
    let (_, nat) = sh("iptables", &["-t", "nat", "-S"]);
    let masq = format!("-A {chain} -s {subnet} ! -d {subnet} ");
    assert_eq!(nat.matches(&masq).count(), 1, "{nat}");
    assert_eq!(
        nat.matches(&format!("-A PEAPOD-POSTROUTING -j {chain}"))
            .count(),
        1,
        "{nat}"
    );
    let (_, filter) = sh("iptables", &["-S"]);
    assert!(
        filter.contains(&format!("-A PEAPOD-FORWARD -j {chain}")),
        "{filter}"
    );
    assert!(
        filter.contains(&format!("-A {chain} -i {bridge} ")),
        "{filter}"
    );
    assert!(
        filter.contains(&format!("-A {chain} -o {bridge} ")),
        "{filter}"
    );

    // The gateway answers, and so does a host address outside the bridge (on
    // an interface of the test's, with a listener of this test on it).
    let gateway = format!("{}1", subnet.trim_end_matches("0/24"));
    let ping = net.ok(&["exec", &a, "ping", "-c", "1", "-W", "3", &gateway]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let y: u32 = subnet.split('.').nth(2).unwrap().parse().unwrap();
    let host_ip = format!("100.127.{y}.1");
    let peer = format!("{}p", net.host_if);
    for args in [
        vec![
            "link",
            "add",
            net.host_if.as_str(),
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ],
        vec!["addr", "add", &format!("{host_ip}/32"), "dev", &net.host_if],
        vec!["link", "set", &net.host_if, "up"],
        vec!["link", "set", &peer, "up"],
    ] {
        let (ok, out) = sh("ip", &args);
        assert!(ok, "ip {args:?}: {out}");
    }
    let listener = TcpListener::bind((host_ip.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let accept = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        (peer, got)
    });
    net.ok(&[
        "exec",
        &b,
        "sh",
        "-c",
        &format!("echo hello-host | nc {host_ip} {port}"),
    ]);
    let (peer, got) = accept.join().unwrap();
    assert_eq!(got.trim(), "hello-host");
    assert!(
        peer.ip()
            .to_string()
            .starts_with(&subnet[..subnet.len() - 4]),
        "{peer}"
    );

    // rm keeps the network's rules; network rm removes them.
    net.ok(&["rm", "-f", &a, &b]);
    let (_, nat) = sh("iptables", &["-t", "nat", "-S"]);
    assert_eq!(nat.matches(&masq).count(), 1, "{nat}");
    net.ok(&["network", "rm", name]);
    for table in ["nat", "filter"] {
        let (_, all) = sh("iptables", &["-t", table, "-S"]);
        assert!(
            !all.contains(&chain) && !all.contains(subnet.as_str()),
            "{table}: {all}"
        );
    }
    assert!(!Path::new("/sys/class/net").join(bridge).exists());
}
