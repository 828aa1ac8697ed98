//! The engine's networks with real CNI plugins (Debian's
//! containernetworking-plugins), as root. Every test has its own engine roots
//! and config dir in a tempdir and its own network (unique name, bridge and
//! /24 in 10.230-239.x), so tests run in parallel and never touch the default
//! network. A guard detaches, removes the network and unmounts on drop, panics
//! included.

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use peapod_engine::network::{NetworkCreate, NetworkError, Networks};
use peapod_engine::paths::Paths;
use peapod_engine::request::{PortMapping, Protocol};
use peapod_net::NetnsDir;

fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return false;
    }
    for tool in ["/usr/lib/cni/bridge", "/usr/lib/cni/portmap"] {
        if !Path::new(tool).exists() {
            eprintln!("skipped: {tool} missing (containernetworking-plugins)");
            return false;
        }
    }
    true
}

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Serializes picking subnets among this binary's tests.
static PICK: Mutex<()> = Mutex::new(());

/// One test's engine and network; everything is undone on drop.
struct TestNet {
    paths: Paths,
    nets: Networks,
    name: String,
    bridge: String,
    /// `10.X.Y.` of the network's /24.
    prefix: String,
    ids: Mutex<Vec<String>>,
    tag: String,
    tmp: Option<tempfile::TempDir>,
}

impl TestNet {
    fn new() -> TestNet {
        let pid = std::process::id();
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::new(
            tmp.path().join("root"),
            tmp.path().join("run"),
            tmp.path().join("net.d"),
        );
        let nets = Networks::new(&paths);
        let _guard = PICK.lock().unwrap_or_else(|e| e.into_inner());
        let (_, routes) = sh("ip", &["-4", "route", "show", "table", "all"]);
        let (n, prefix) = loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            assert!(n < 500, "no free 10.23x.y.0/24");
            let x = 230 + (pid + n / 250) % 10;
            let y = 1 + (pid.wrapping_mul(7) + n) % 250;
            let prefix = format!("10.{x}.{y}.");
            if !routes.contains(&prefix) {
                break (n, prefix);
            }
        };
        let tag = format!("{}x{n}", pid % 100_000);
        let name = format!("pdtnet-{tag}");
        let bridge = format!("pdt{tag}");
        let info = nets
            .create(&NetworkCreate {
                name: name.clone(),
                subnet: Some(format!("{prefix}0/24")),
                gateway: None,
                bridge: Some(bridge.clone()),
            })
            .unwrap();
        assert_eq!(info.bridge, bridge);
        assert_eq!(info.gateway, format!("{prefix}1"));
        TestNet {
            paths,
            nets,
            name,
            bridge,
            prefix,
            ids: Mutex::new(Vec::new()),
            tag,
            tmp: Some(tmp),
        }
    }

    /// A container id unique to this test.
    fn id(&self, what: &str) -> String {
        let id = format!("c{}-{what}", self.tag);
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    fn lease_dir(&self) -> PathBuf {
        Path::new("/var/lib/cni/networks").join(&self.name)
    }

    /// Lease files of our subnet held by `id` (or by anyone: `None`).
    fn leases(&self, id: Option<&str>) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.lease_dir()) else {
            return Vec::new();
        };
        entries
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&self.prefix))
            .filter(|e| {
                id.is_none_or(|id| {
                    fs::read_to_string(e.path()).is_ok_and(|c| c.lines().next() == Some(id))
                })
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// The host-side veths on our bridge.
    fn veths(&self) -> Vec<String> {
        let (_, out) = sh("ip", &["-o", "link", "show", "master", &self.bridge]);
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Asserts nothing of container `id` is left.
    fn assert_gone(&self, id: &str) {
        let file = self.nets.netns_path(id);
        assert!(!file.exists(), "netns file {} left", file.display());
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&file.display().to_string()),
            "netns mount {} left",
            file.display()
        );
        let leases = self.leases(Some(id));
        assert!(leases.is_empty(), "leases of {id} left: {leases:?}");
        for table in ["filter", "nat"] {
            let (_, rules) = sh("iptables", &["-t", table, "-S"]);
            let needle = format!("id: \\\"{id}\\\"");
            for line in rules.lines() {
                assert!(
                    !line.contains(&needle),
                    "iptables {table} rule left: {line}"
                );
            }
        }
        let cache = self.paths.cni_cache();
        if let Ok(entries) = fs::read_dir(&cache) {
            for e in entries {
                let e = e.unwrap();
                let text = fs::read_to_string(e.path()).unwrap_or_default();
                assert!(
                    !text.contains(&format!("\"containerId\": \"{id}\"")),
                    "cache entry {} left",
                    e.path().display()
                );
            }
        }
    }

    fn cleanup(&mut self) -> Vec<String> {
        let mut errs = Vec::new();
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            if let Err(e) = self.nets.detach(&id) {
                errs.push(format!("detach {id}: {e}"));
            }
        }
        if let Err(e) = self.nets.remove(&self.name, &[]) {
            errs.push(format!("remove {}: {e}", self.name));
        }
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            let _ = sh("ip", &["link", "delete", &self.bridge]);
        }
        let _ = fs::remove_dir_all(self.lease_dir());
        let unmounted = NetnsDir::new(self.paths.netns()).unmount_root();
        if let Some(tmp) = self.tmp.take()
            && let Err(e) = unmounted
        {
            // Never delete a tree that may still hold mounts.
            errs.push(format!("unmount: {e}"));
            let _ = tmp.keep();
        }
        errs
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if self.tmp.is_some() {
            let errs = self.cleanup();
            if !errs.is_empty() {
                eprintln!("cleanup errors: {errs:?}");
            }
        }
    }
}

fn ping(netns: &Path, ip: IpAddr) -> (bool, String) {
    let net = format!("--net={}", netns.display());
    sh(
        "nsenter",
        &[&net, "busybox", "ping", "-c1", "-W2", &ip.to_string()],
    )
}

/// Kills and reaps a helper process on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET /index.html from 127.0.0.1:port, retried while the server comes up.
fn fetch(port: u16) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..50 {
        let attempt = || -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        };
        match attempt() {
            Ok(body) if !body.is_empty() => return Ok(body),
            Ok(_) => last = "empty reply".into(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

fn tcp(host_port: u16, container_port: u16) -> PortMapping {
    PortMapping {
        host_ip: None,
        host_port,
        container_port,
        protocol: Protocol::Tcp,
    }
}

#[test]
fn two_containers_ping_each_other_and_detach_leaves_nothing() {
    if !can_run() {
        return;
    }
    let mut t = TestNet::new();
    let (a, b) = (t.id("a"), t.id("b"));
    let att_a = t.nets.attach(&a, Some(&t.name), &[]).unwrap();
    let att_b = t.nets.attach(&b, Some(&t.name), &[]).unwrap();
    for att in [&att_a, &att_b] {
        assert_eq!(att.network, t.name);
        let ip = att.ip.unwrap();
        assert!(ip.to_string().starts_with(&t.prefix), "{att:?}");
        assert_eq!(att.prefix_len, Some(24));
        assert_eq!(att.gateway, Some(format!("{}1", t.prefix).parse().unwrap()));
        assert!(att.mac.as_deref().is_some_and(|m| m.len() == 17), "{att:?}");
        assert!(att.netns.exists());
    }
    assert_eq!(att_a.netns, t.nets.netns_path(&a));
    assert_ne!(att_a.ip, att_b.ip);
    assert_eq!(t.veths().len(), 2);
    assert!(matches!(
        t.nets.attach(&a, Some(&t.name), &[]),
        Err(NetworkError::AlreadyAttached { .. })
    ));

    let (ok, out) = ping(&att_a.netns, "127.0.0.1".parse().unwrap());
    assert!(ok, "lo is not up in the namespace: {out}");
    let (ok, out) = ping(&att_a.netns, att_b.ip.unwrap());
    assert!(ok, "ping a -> b failed: {out}");
    let (ok, out) = ping(&att_b.netns, att_a.ip.unwrap());
    assert!(ok, "ping b -> a failed: {out}");

    let listed = t.nets.list().unwrap();
    assert!(
        listed
            .iter()
            .any(|n| n.name == t.name && n.driver == "bridge")
    );
    assert_eq!(
        t.nets.inspect(&t.name).unwrap().subnet,
        format!("{}0/24", t.prefix)
    );

    t.nets.detach(&a).unwrap();
    t.nets.detach(&b).unwrap();
    t.assert_gone(&a);
    t.assert_gone(&b);
    assert!(t.veths().is_empty(), "veths left: {:?}", t.veths());
    // Idempotent.
    t.nets.detach(&a).unwrap();

    // Removing the network deletes its (now unused) bridge.
    t.nets.remove(&t.name, &[]).unwrap();
    assert!(!Path::new("/sys/class/net").join(&t.bridge).exists());
    assert!(!t.lease_dir().exists(), "empty lease dir left");
    let errs = t.cleanup();
    assert_eq!(errs.len(), 1, "{errs:?}"); // the network is already removed
    assert!(errs[0].contains("not found"), "{errs:?}");
}

#[test]
fn published_port_answers_on_host_loopback_and_busy_ports_are_refused() {
    if !can_run() {
        return;
    }
    let t = TestNet::new();
    let web = t.id("web");
    let att = t.nets.attach(&web, Some(&t.name), &[tcp(0, 80)]).unwrap();
    assert_eq!(att.ports.len(), 1);
    let port = att.ports[0].host_port;
    assert_ne!(port, 0);
    assert_eq!(att.ports[0].container_port, 80);

    let www = t.tmp.as_ref().unwrap().path().join("www");
    fs::create_dir(&www).unwrap();
    fs::write(www.join("index.html"), "hello from a peapod network\n").unwrap();
    let server = Command::new("nsenter")
        .arg(format!("--net={}", att.netns.display()))
        .args(["busybox", "httpd", "-f", "-p", "80", "-h"])
        .arg(&www)
        .spawn()
        .unwrap();
    let server = Reaped(server);
    let body = fetch(port).unwrap_or_else(|e| panic!("127.0.0.1:{port}: {e}"));
    assert!(body.contains("hello from a peapod network"), "{body}");
    drop(server);

    // The same host port again: published by a live attachment.
    let other = t.id("other");
    let e = t
        .nets
        .attach(&other, Some(&t.name), &[tcp(port, 80)])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("port {port}/tcp is already in use on the host: pick another host port")
    );
    t.assert_gone(&other);

    // A port a host socket holds.
    let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let busy = held.local_addr().unwrap().port();
    let e = t
        .nets
        .attach(&other, Some(&t.name), &[tcp(8081, 81), tcp(busy, 80)])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("port {busy}/tcp is already in use on the host: pick another host port")
    );
    t.assert_gone(&other);
    assert_eq!(t.veths().len(), 1);
    drop(held);

    t.nets.detach(&web).unwrap();
    t.assert_gone(&web);
    let (_, nat) = sh("iptables", &["-t", "nat", "-S"]);
    assert!(
        !nat.contains(&format!("--dport {port} ")),
        "DNAT rule left: {nat}"
    );
}

#[test]
fn reconcile_and_detach_clean_up_after_crashes() {
    if !can_run() {
        return;
    }
    let t = TestNet::new();
    let (live, crashed, gone) = (t.id("live"), t.id("crashed"), t.id("gone"));
    t.nets.attach(&live, Some(&t.name), &[]).unwrap();
    t.nets
        .attach(&crashed, Some(&t.name), &[tcp(0, 80)])
        .unwrap();
    // A namespace file left without any attachment (crash mid-attach).
    let stray = t.id("stray");
    NetnsDir::new(t.paths.netns()).create(&stray).unwrap();

    let cleaned = t.nets.reconcile(&|id| id == live).unwrap();
    let mut want = vec![crashed.clone(), stray.clone()];
    want.sort();
    assert_eq!(cleaned, want);
    t.assert_gone(&crashed);
    t.assert_gone(&stray);
    assert!(t.nets.netns_path(&live).exists());
    assert_eq!(t.veths().len(), 1);

    // The namespace vanished under an attachment (unmounted behind our back):
    // detach still releases the lease and the published port.
    let att = t.nets.attach(&gone, Some(&t.name), &[tcp(0, 80)]).unwrap();
    let port = att.ports[0].host_port;
    let (_, nat) = sh("iptables", &["-t", "nat", "-S"]);
    assert!(nat.contains(&format!("--dport {port} ")), "{nat}");
    NetnsDir::new(t.paths.netns()).delete(&gone).unwrap();
    assert!(!att.netns.exists());
    t.nets.detach(&gone).unwrap();
    t.assert_gone(&gone);
    let (_, nat) = sh("iptables", &["-t", "nat", "-S"]);
    assert!(!nat.contains(&format!("--dport {port} ")), "{nat}");

    assert_eq!(t.nets.reconcile(&|_| true).unwrap(), Vec::<String>::new());
    assert_eq!(t.nets.reconcile(&|_| false).unwrap(), vec![live.clone()]);
    t.assert_gone(&live);
    assert!(t.veths().is_empty());
}

#[test]
fn hundred_attach_detach_cycles_leak_nothing() {
    if !can_run() {
        return;
    }
    let t = TestNet::new();
    let id = t.id("cycle");
    for i in 0..100 {
        let port = if i % 10 == 0 {
            vec![tcp(0, 80)]
        } else {
            vec![]
        };
        let att = t
            .nets
            .attach(&id, Some(&t.name), &port)
            .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
        assert!(att.ip.is_some());
        t.nets
            .detach(&id)
            .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
    }
    t.assert_gone(&id);
    assert!(t.leases(None).is_empty(), "leases: {:?}", t.leases(None));
    assert!(t.veths().is_empty(), "veths: {:?}", t.veths());
    let netns = NetnsDir::new(t.paths.netns());
    assert!(netns.list().unwrap().is_empty());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = t.paths.netns().display().to_string();
    let under: Vec<_> = mounts
        .lines()
        .filter(|l| l.contains(&format!("{root}/")))
        .collect();
    assert!(under.is_empty(), "netns mounts left: {under:?}");
}

#[test]
fn missing_plugins_are_named_and_nothing_is_left() {
    if !can_run() {
        return;
    }
    let t = TestNet::new();
    let empty = t.tmp.as_ref().unwrap().path().join("no-plugins");
    fs::create_dir(&empty).unwrap();
    let nets = Networks::new(&t.paths).with_plugin_dirs(vec![empty.clone()]);
    let id = t.id("noplug");
    let e = nets.attach(&id, Some(&t.name), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "CNI plugin \"bridge\" not found in {}: install containernetworking-plugins",
            empty.display()
        )
    );
    t.assert_gone(&id);
    let e = t.nets.attach(&id, Some("no-such-net"), &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "network \"no-such-net\" not found: create it with `peapod network create no-such-net`"
    );
    t.assert_gone(&id);
}

#[test]
fn the_guard_cleans_up_when_a_test_panics() {
    if !can_run() {
        return;
    }
    let t = TestNet::new();
    let (name, bridge, prefix) = (t.name.clone(), t.bridge.clone(), t.prefix.clone());
    let run = t.paths.netns();
    let config = t.paths.cni_config.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let t = t;
        let id = t.id("boom");
        t.nets.attach(&id, Some(&t.name), &[tcp(0, 80)]).unwrap();
        panic!("injected failure with {id} attached");
    }));
    assert!(outcome.is_err());
    assert!(!Path::new("/sys/class/net").join(&bridge).exists());
    assert!(!config.exists(), "tempdir left");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&run.display().to_string()), "mounts left");
    assert!(!Path::new("/var/lib/cni/networks").join(&name).exists());
    for table in ["filter", "nat"] {
        let (_, rules) = sh("iptables", &["-t", table, "-S"]);
        for line in rules.lines() {
            assert!(
                !line.contains(&name) && !line.contains(&prefix),
                "iptables {table} rule left: {line}"
            );
        }
    }
}

/// Config-only operations: no root needed, nothing touches the host.
#[test]
fn create_list_inspect_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let paths = Paths::new(
        tmp.path().join("root"),
        tmp.path().join("run"),
        tmp.path().join("net.d"),
    );
    let nets = Networks::new(&paths);
    nets.ensure_default().unwrap();
    nets.ensure_default().unwrap();
    let def = nets.inspect("peapod").unwrap();
    assert_eq!(
        (def.subnet.as_str(), def.bridge.as_str()),
        ("10.89.0.0/16", "peapod0")
    );

    let one = nets
        .create(&NetworkCreate {
            name: "one".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(one.driver, "bridge");
    assert!(one.bridge.starts_with("peapod") && one.bridge != "peapod0");
    let net: Vec<&str> = one.subnet.split(['.', '/']).collect();
    assert_eq!((net[0], net[2], net[3], net[4]), ("10", "0", "0", "16"));
    assert_ne!(net[1], "89");
    assert!(one.created.ends_with('Z'));

    let two = nets
        .create(&NetworkCreate {
            name: "two".into(),
            subnet: Some("10.201.7.0/24".into()),
            gateway: Some("10.201.7.254".into()),
            bridge: Some("pdtwo".into()),
        })
        .unwrap();
    assert_eq!(two.gateway, "10.201.7.254");
    assert_eq!(nets.inspect("two").unwrap(), two);

    let err = |req: NetworkCreate| nets.create(&req).unwrap_err().to_string();
    assert_eq!(
        err(NetworkCreate {
            name: "one".into(),
            ..Default::default()
        }),
        "network \"one\" already exists: pick another name or remove it first"
    );
    assert_eq!(
        err(NetworkCreate {
            name: "three".into(),
            subnet: Some("10.201.0.0/16".into()),
            ..Default::default()
        }),
        "subnet 10.201.0.0/16 overlaps network \"two\": pick another --subnet"
    );
    assert!(
        err(NetworkCreate {
            name: "three".into(),
            subnet: Some("10.202.0.1/16".into()),
            ..Default::default()
        })
        .contains("host bits are set")
    );
    assert!(
        err(NetworkCreate {
            name: "three".into(),
            bridge: Some("pdtwo".into()),
            ..Default::default()
        })
        .contains("already used by network \"two\"")
    );
    assert!(
        err(NetworkCreate {
            name: "bad name".into(),
            ..Default::default()
        })
        .starts_with("invalid network name")
    );

    let names: Vec<String> = nets.list().unwrap().into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["one", "peapod", "two"]);

    assert_eq!(
        nets.remove("two", &["web".into(), "db".into()])
            .unwrap_err()
            .to_string(),
        "network \"two\" is in use by web, db: stop and remove them first"
    );
    assert_eq!(
        nets.remove("peapod", &[]).unwrap_err().to_string(),
        "the default network \"peapod\" cannot be removed"
    );
    nets.remove("two", &[]).unwrap();
    nets.remove("one", &[]).unwrap();
    assert!(matches!(
        nets.inspect("two"),
        Err(NetworkError::NotFound(_))
    ));
    assert!(matches!(
        nets.remove("two", &[]),
        Err(NetworkError::NotFound(_))
    ));
}

/// A network namespace standing for "outside the host": a veth pair links it
/// to the host on a /30 of 100.64.0.0/10, and it has no route to any bridge
/// subnet, so it only answers a container whose traffic the host masquerades
/// to its own address on the link. Removed (namespace, veths, server) on
/// drop.
struct Outside {
    netns: NetnsDir,
    name: String,
    host_if: String,
    /// (host side, outside side) addresses.
    ips: (String, String),
    server: Option<Reaped>,
}

impl Outside {
    fn new(t: &TestNet) -> Outside {
        let tmp = t.tmp.as_ref().unwrap().path();
        let netns = NetnsDir::new(tmp.join("outside-netns"));
        let name = format!("out-{}", t.tag);
        let file = netns.create(&name).unwrap();
        let (host_if, peer_if) = (format!("pdo{}", t.tag), format!("pdp{}", t.tag));
        let mut out = Outside {
            netns,
            name,
            host_if: host_if.clone(),
            ips: Default::default(),
            server: None,
        };
        let _guard = PICK.lock().unwrap_or_else(|e| e.into_inner());
        let (_, routes) = sh("ip", &["-4", "route", "show", "table", "all"]);
        let pid = std::process::id();
        let net = (0..250)
            .map(|i| format!("100.{}.{}.", 64 + pid % 64, (pid / 64 + i) % 250))
            .find(|n| !routes.contains(n.as_str()))
            .expect("a free 100.64.0.0/10 /30");
        out.ips = (format!("{net}1"), format!("{net}2"));
        let net_arg = format!("--net={}", file.display());
        let host_cidr = format!("{}/30", out.ips.0);
        let peer_cidr = format!("{}/30", out.ips.1);
        for (cmd, args) in [
            (
                "ip",
                vec![
                    "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
                ],
            ),
            (
                "ip",
                vec!["link", "set", &peer_if, "netns", file.to_str().unwrap()],
            ),
            ("ip", vec!["addr", "add", &host_cidr, "dev", &host_if]),
            ("ip", vec!["link", "set", &host_if, "up"]),
            (
                "nsenter",
                vec![&net_arg, "ip", "addr", "add", &peer_cidr, "dev", &peer_if],
            ),
            (
                "nsenter",
                vec![&net_arg, "ip", "link", "set", &peer_if, "up"],
            ),
        ] {
            let (ok, text) = sh(cmd, &args);
            assert!(ok, "{cmd} {args:?}: {text}");
        }
        let www = tmp.join("outside-www");
        fs::create_dir_all(&www).unwrap();
        fs::write(www.join("index.html"), "hello from outside\n").unwrap();
        let server = Command::new("nsenter")
            .arg(&net_arg)
            .args(["busybox", "httpd", "-f", "-p", "8000", "-h"])
            .arg(&www)
            .spawn()
            .unwrap();
        out.server = Some(Reaped(server));
        out
    }

    /// GET the outside server's page from network namespace `netns`.
    fn fetch_from(&self, netns: &Path) -> (bool, String) {
        let url = format!("http://{}:8000/index.html", self.ips.1);
        let net = format!("--net={}", netns.display());
        let mut last = (false, String::new());
        // The server may still be starting.
        for _ in 0..50 {
            // (busybox 1.35's wget -T crashes: timeout(1) bounds it.)
            last = sh(
                "timeout",
                &[
                    "5", "nsenter", &net, "busybox", "wget", "-q", "-O", "-", &url,
                ],
            );
            if last.0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        last
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        drop(self.server.take());
        // Deleting one end of a veth pair deletes both.
        let _ = sh("ip", &["link", "delete", &self.host_if]);
        let _ = self.netns.delete(&self.name);
        let _ = self.netns.unmount_root();
    }
}

/// Packets the network's MASQUERADE rule matched so far.
fn masquerade_packets(chain: &str) -> u64 {
    let (ok, out) = sh("iptables", &["-t", "nat", "-L", chain, "-n", "-v", "-x"]);
    assert!(ok, "{out}");
    out.lines()
        .find(|l| l.contains("MASQUERADE"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no MASQUERADE rule in {chain}: {out}"))
}

#[test]
fn host_rules_are_per_network_and_containers_reach_outside_the_host() {
    if !can_run() {
        return;
    }
    let mut t = TestNet::new();
    let subnet = format!("{}0/24", t.prefix);
    let chain = format!("PEAPOD-BR-{}", t.bridge);
    let (a, b) = (t.id("a"), t.id("b"));
    let att_a = t.nets.attach(&a, Some(&t.name), &[]).unwrap();
    let att_b = t.nets.attach(&b, Some(&t.name), &[tcp(0, 80)]).unwrap();

    // lo is up, with 127.0.0.1, without the loopback plugin.
    let net_a = format!("--net={}", att_a.netns.display());
    let (_, lo) = sh("nsenter", &[&net_a, "ip", "-o", "addr", "show", "lo"]);
    assert!(lo.contains("inet 127.0.0.1/8"), "{lo}");
    let (_, link) = sh("nsenter", &[&net_a, "ip", "-o", "link", "show", "lo"]);
    assert!(link.contains(",UP"), "{link}");

    // One MASQUERADE rule for the subnet and the FORWARD accept rules, for
    // two containers; nothing per container.
    let (_, nat) = sh("iptables", &["-t", "nat", "-S"]);
    let masq = format!("-A {chain} -s {subnet} ! -d {subnet} ");
    assert_eq!(nat.matches(&masq).count(), 1, "{nat}");
    assert!(
        nat.contains(&format!("-A PEAPOD-POSTROUTING -j {chain}")),
        "{nat}"
    );
    assert!(
        nat.contains("-A POSTROUTING -j PEAPOD-POSTROUTING"),
        "{nat}"
    );
    let (_, filter) = sh("iptables", &["-S"]);
    assert!(filter.contains("-A FORWARD -j PEAPOD-FORWARD"), "{filter}");
    assert!(
        filter.contains(&format!("-A PEAPOD-FORWARD -j {chain}")),
        "{filter}"
    );
    assert!(
        filter.contains(&format!("-A {chain} -i {} ", t.bridge)),
        "{filter}"
    );
    assert!(
        filter.contains(&format!(
            "-A {chain} -o {} -m comment --comment \"peapod network {}\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            t.bridge, t.name
        )),
        "{filter}"
    );
    for ip in [att_a.ip.unwrap(), att_b.ip.unwrap()] {
        let ip = format!("{ip}/32");
        assert!(
            !nat.contains(&ip) && !filter.contains(&ip),
            "a rule per container: {ip}"
        );
    }

    // The gateway (the host's address on the bridge) and the other container.
    let gateway = att_a.gateway.unwrap();
    let (ok, out) = ping(&att_a.netns, gateway);
    assert!(ok, "ping gateway {gateway}: {out}");
    let (ok, out) = ping(&att_a.netns, att_b.ip.unwrap());
    assert!(ok, "ping b: {out}");

    // Outside the host: only masqueraded traffic gets an answer.
    let outside = Outside::new(&t);
    let before = masquerade_packets(&chain);
    for att in [&att_a, &att_b] {
        let (ok, body) = outside.fetch_from(&att.netns);
        assert!(ok && body.contains("hello from outside"), "{body}");
    }
    assert!(
        masquerade_packets(&chain) > before,
        "not masqueraded by {chain}"
    );

    // The marker spares later attaches any iptables call: rules removed
    // behind the engine's back stay removed until the marker goes.
    let marker = t.paths.network_markers().join(format!("{}.rules", t.name));
    assert!(marker.exists(), "no marker {}", marker.display());
    let rules = peapod_net::HostRules::new(&t.name, &t.bridge, &subnet).unwrap();
    assert!(rules.in_place().unwrap());
    rules.remove().unwrap();
    let c = t.id("c");
    t.nets.attach(&c, Some(&t.name), &[]).unwrap();
    assert!(!rules.in_place().unwrap(), "re-ensured despite the marker");
    fs::remove_file(&marker).unwrap();
    let d = t.id("d");
    t.nets.attach(&d, Some(&t.name), &[]).unwrap();
    assert!(rules.in_place().unwrap(), "not ensured without the marker");
    assert!(marker.exists());

    // Detaching keeps the network's rules; removing the network drops them.
    for id in [&a, &b, &c, &d] {
        t.nets.detach(id).unwrap();
        t.assert_gone(id);
    }
    assert!(rules.in_place().unwrap());
    drop(outside);
    t.nets.remove(&t.name, &[]).unwrap();
    assert!(!marker.exists());
    for table in ["nat", "filter"] {
        let (_, all) = sh("iptables", &["-t", table, "-S"]);
        assert!(!all.contains(&chain), "{table}: {all}");
        assert!(!all.contains(&subnet), "{table}: {all}");
    }
    let errs = t.cleanup();
    assert_eq!(errs.len(), 1, "{errs:?}"); // the network is already removed
}
