//! Real CNI plugins (Debian's containernetworking-plugins) on a test-unique
//! bridge network: two namespaces get addresses, ping each other, and after
//! DEL nothing is left (veths, bridge, leases, mounts, iptables rules). The
//! network's host rules (NAT, FORWARD) are peapod's, once per network.
//! Needs root; skipped with a message otherwise.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use peapod_net::cni::{CniRuntime, NetworkConfigList, RuntimeConf};
use peapod_net::{BridgeNetwork, HostRules, NetnsDir};
use serde_json::{Map, json};

fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return false;
    }
    if !Path::new("/usr/lib/cni/bridge").exists() {
        eprintln!("skipped: /usr/lib/cni/bridge missing (containernetworking-plugins)");
        return false;
    }
    true
}

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A /24 in 10.250.0.0/16 no route of this host uses yet.
fn free_subnet(offset: u32) -> u32 {
    let (_, routes) = sh("ip", &["-4", "route", "show", "table", "all"]);
    let start = (std::process::id() + offset) % 250;
    (0..250)
        .map(|i| 1 + (start + i) % 250)
        .find(|x| !routes.contains(&format!("10.250.{x}.")))
        .expect("a free 10.250.X.0/24")
}

/// Everything the test created; `cleanup` is idempotent and also runs on drop
/// (panics included).
struct Env {
    netns: NetnsDir,
    cni: CniRuntime,
    list: NetworkConfigList,
    bridge: String,
    rules: HostRules,
    attachments: Vec<(String, RuntimeConf)>,
    done: bool,
}

impl Env {
    fn cleanup(&mut self) -> Vec<String> {
        let mut errs = Vec::new();
        for (name, rt) in &self.attachments {
            if let Err(e) = self.cni.del(&self.list, rt) {
                errs.push(e.to_string());
            }
            if let Err(e) = self.netns.delete(name) {
                errs.push(e.to_string());
            }
        }
        let _ = sh("ip", &["link", "del", &self.bridge]);
        if let Err(e) = self.rules.remove() {
            errs.push(e.to_string());
        }
        if let Err(e) = self.netns.unmount_root() {
            errs.push(e.to_string());
        }
        self.done = true;
        errs
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.done {
            let errs = self.cleanup();
            if !errs.is_empty() {
                eprintln!("cleanup errors: {errs:?}");
            }
        }
    }
}

fn ping(netns: &Path, ip: &str) -> (bool, String) {
    let net = format!("--net={}", netns.display());
    sh("nsenter", &[&net, "busybox", "ping", "-c1", "-W2", ip])
}

/// A test-unique network `pea{tag}PID` on bridge `pe{tag}PID` and a free
/// 10.250.X.0/24, with its IPAM data, cache and netns dir under `tmp`.
fn setup(tag: &str, offset: u32, tmp: &Path) -> (Env, BridgeNetwork, u32) {
    let pid = std::process::id();
    let x = free_subnet(offset);
    let net = BridgeNetwork {
        name: format!("pea{tag}{pid}"),
        bridge: format!("pe{tag}{pid}"),
        subnet: format!("10.250.{x}.0/24"),
        ipam_data_dir: Some(tmp.join("ipam")),
    };
    let list = NetworkConfigList::from_file(&net.write(&tmp.join("net.d")).unwrap()).unwrap();
    let rules = HostRules::new(&net.name, &net.bridge, &net.subnet).unwrap();
    rules.ensure().unwrap();
    let env = Env {
        netns: NetnsDir::new(tmp.join("netns")),
        cni: CniRuntime::new(vec![PathBuf::from("/usr/lib/cni")], tmp.join("cache")),
        list,
        bridge: net.bridge.clone(),
        rules,
        attachments: Vec::new(),
        done: false,
    };
    (env, net, x)
}

/// Asserts nothing of the network under `tmp` is left (after cleanup).
fn assert_nothing_left(net: &BridgeNetwork, x: u32, tmp: &Path) {
    let netns = NetnsDir::new(tmp.join("netns"));
    let cni = CniRuntime::new(Vec::new(), tmp.join("cache"));
    let (exists, _) = sh("ip", &["link", "show", &net.bridge]);
    assert!(!exists, "bridge {} left", net.bridge);
    assert!(netns.list().unwrap().is_empty());
    let root = tmp.join("netns").display().to_string();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&root), "mounts left under {root}");
    let leases: Vec<_> = fs::read_dir(tmp.join("ipam").join(&net.name))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("10.250."))
        .collect();
    assert!(leases.is_empty(), "IPAM leases left: {leases:?}");
    assert!(cni.cached().unwrap().is_empty(), "cache entries left");
    for table in ["filter", "nat"] {
        let (_, rules) = sh("iptables", &["-t", table, "-S"]);
        for line in rules.lines() {
            assert!(
                !line.contains(&format!("10.250.{x}."))
                    && !line.contains(&net.name)
                    && !line.contains(&net.bridge),
                "iptables {table} rule left: {line}"
            );
        }
    }
}

#[test]
fn two_namespaces_on_a_bridge_ping_then_leave_nothing() {
    if !can_run() {
        return;
    }
    let pid = std::process::id();
    let tmp = tempfile::tempdir().unwrap();
    let (mut env, net, x) = setup("t", 0, tmp.path());
    let mut ips = Vec::new();
    let mut files = Vec::new();
    for side in ["a", "b"] {
        let name = format!("peat-{pid}-{side}");
        let file = env.netns.create(&name).unwrap();
        assert!(env.netns.open(&name).is_ok());
        let rt = RuntimeConf {
            container_id: name.clone(),
            netns: file.clone(),
            ifname: "eth0".into(),
            ..Default::default()
        };
        env.attachments.push((name, rt.clone()));
        let res = env.cni.add(&env.list, &rt).unwrap();
        let addrs = res.addresses();
        assert_eq!(addrs.len(), 1, "{res:?}");
        assert!(addrs[0].starts_with(&format!("10.250.{x}.")), "{addrs:?}");
        let iface = res
            .interfaces
            .iter()
            .find(|i| !i.sandbox.is_empty())
            .unwrap();
        assert_eq!(iface.name, "eth0");
        assert_eq!(Path::new(&iface.sandbox), file);
        env.cni.check(&env.list, &rt).unwrap();
        ips.push(addrs[0].clone());
        files.push(file);
    }
    assert_ne!(ips[0], ips[1]);
    // The network's rules, once (ensured again: no duplicate), and no rule
    // per container.
    env.rules.ensure().unwrap();
    assert!(env.rules.in_place().unwrap());
    let chain = env.rules.chain();
    let subnet = &net.subnet;
    let (_, nat) = sh("iptables", &["-t", "nat", "-S"]);
    let masq = format!("-A {chain} -s {subnet} ! -d {subnet} ");
    assert_eq!(nat.matches(&masq).count(), 1, "{nat}");
    assert_eq!(
        nat.matches(&format!("-A PEAPOD-POSTROUTING -j {chain}"))
            .count(),
        1,
        "{nat}"
    );
    assert!(
        nat.contains("-A POSTROUTING -j PEAPOD-POSTROUTING"),
        "{nat}"
    );
    let (_, filter) = sh("iptables", &["-S"]);
    assert!(filter.contains("-A FORWARD -j PEAPOD-FORWARD"), "{filter}");
    assert_eq!(
        filter
            .matches(&format!("-A PEAPOD-FORWARD -j {chain}"))
            .count(),
        1,
        "{filter}"
    );
    for want in [
        format!("-A {chain} -o {} ", net.bridge),
        format!("-A {chain} -i {} ", net.bridge),
    ] {
        assert!(filter.contains(&want), "no {want:?}: {filter}");
    }
    for ip in &ips {
        let ip = ip.split('/').next().unwrap();
        assert!(
            !nat.contains(ip) && !filter.contains(ip),
            "a rule per container: {nat} {filter}"
        );
    }
    let mut names = env.netns.list().unwrap();
    names.sort();
    assert_eq!(names, [format!("peat-{pid}-a"), format!("peat-{pid}-b")]);

    let (ok, out) = ping(&files[0], &ips[1]);
    assert!(ok, "ping a -> b ({}) failed: {out}", ips[1]);
    let (ok, out) = ping(&files[1], &ips[0]);
    assert!(ok, "ping b -> a ({}) failed: {out}", ips[0]);

    // DEL both; the bridge's ports (the host-side veths) must be gone.
    for (_, rt) in &env.attachments {
        env.cni.del(&env.list, rt).unwrap();
    }
    let (_, ports) = sh("ip", &["-o", "link", "show", "master", &net.bridge]);
    assert!(
        ports.trim().is_empty(),
        "veths left on {}: {ports}",
        net.bridge
    );
    let errs = env.cleanup();
    assert!(errs.is_empty(), "{errs:?}");

    assert_nothing_left(&net, x, tmp.path());
}

/// Kills and reaps a helper process on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GET / from 127.0.0.1:port; retried while the server comes up.
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

#[test]
fn published_port_reaches_the_namespace_from_host_loopback() {
    if !can_run() {
        return;
    }
    let pid = std::process::id();
    let tmp = tempfile::tempdir().unwrap();
    let (mut env, net, x) = setup("p", 125, tmp.path());
    let name = format!("peap-{pid}");
    let file = env.netns.create(&name).unwrap();
    let host_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut caps = Map::new();
    caps.insert(
        "portMappings".into(),
        json!([{"hostPort": host_port, "containerPort": 8080, "protocol": "tcp", "hostIP": "127.0.0.1"}]),
    );
    let rt = RuntimeConf {
        container_id: name.clone(),
        netns: file.clone(),
        ifname: "eth0".into(),
        capability_args: caps,
        ..Default::default()
    };
    env.attachments.push((name, rt.clone()));
    env.cni.add(&env.list, &rt).unwrap();
    let (_, nat) = sh("iptables", &["-t", "nat", "-S"]);
    assert!(
        nat.contains(&format!("--dport {host_port}")),
        "no DNAT rule: {nat}"
    );

    let www = tmp.path().join("www");
    fs::create_dir(&www).unwrap();
    fs::write(www.join("index.html"), "hello from peapod-net\n").unwrap();
    let server = Command::new("nsenter")
        .arg(format!("--net={}", file.display()))
        .args(["busybox", "httpd", "-f", "-p", "8080", "-h"])
        .arg(&www)
        .spawn()
        .unwrap();
    let server = Reaped(server);
    let body = fetch(host_port).unwrap_or_else(|e| panic!("127.0.0.1:{host_port}: {e}"));
    assert!(body.contains("hello from peapod-net"), "{body}");
    drop(server);

    env.cni.del(&env.list, &rt).unwrap();
    let (_, nat) = sh("iptables", &["-t", "nat", "-S"]);
    assert!(
        !nat.contains(&format!("--dport {host_port}")),
        "DNAT rule left: {nat}"
    );
    let errs = env.cleanup();
    assert!(errs.is_empty(), "{errs:?}");
    assert_nothing_left(&net, x, tmp.path());
}

#[test]
fn cleanup_runs_when_the_test_body_panics() {
    if !can_run() {
        return;
    }
    let pid = std::process::id();
    let tmp = tempfile::tempdir().unwrap();
    let (env, net, x) = setup("f", 60, tmp.path());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut env = env;
        let name = format!("peaf-{pid}");
        let file = env.netns.create(&name).unwrap();
        let rt = RuntimeConf {
            container_id: name.clone(),
            netns: file,
            ifname: "eth0".into(),
            ..Default::default()
        };
        env.attachments.push((name, rt.clone()));
        env.cni.add(&env.list, &rt).unwrap();
        panic!("injected failure with {} attached", net.name);
    }));
    assert!(outcome.is_err());
    let net = BridgeNetwork {
        name: format!("peaf{pid}"),
        bridge: format!("pef{pid}"),
        ..Default::default()
    };
    assert_nothing_left(&net, x, tmp.path());
}
