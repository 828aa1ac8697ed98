//! The container's /etc/hostname, /etc/hosts and /etc/resolv.conf: written
//! in the bundle directory and bind-mounted (read-write, as Docker does).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{BundleContext, BundleError, NsChoice};
use crate::request::{ContainerRequest, DnsBase, DnsConfig};

/// Docker's fallback when the host has only local nameservers.
const FALLBACK_DNS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];
/// systemd-resolved's list of the real upstream servers.
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// The generated files, in the bundle directory.
pub struct EtcFiles {
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
}

/// /etc/hosts for a container with its own network.
pub fn hosts(hostname: &str, ip: Option<IpAddr>) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    if let Some(ip) = ip {
        s.push_str(&format!("{ip}\t{hostname}\n"));
    }
    s
}

fn is_local_nameserver(line: &str) -> bool {
    let mut f = line.split_whitespace();
    f.next() == Some("nameserver")
        && f.next()
            .and_then(|a| a.parse::<IpAddr>().ok())
            .is_some_and(|a| a.is_loopback())
}

/// The container's resolv.conf from the host's: as is with the host's
/// network; otherwise without loopback nameservers (unreachable from the
/// container), and with 8.8.8.8/8.8.4.4 when none is left.
pub fn resolv_conf(host: &str, host_net: bool) -> String {
    if host_net {
        return host.to_string();
    }
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        if is_local_nameserver(line) {
            continue;
        }
        if line.split_whitespace().next() == Some("nameserver") {
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        for s in FALLBACK_DNS {
            out.push_str(&format!("nameserver {s}\n"));
        }
    }
    out
}

fn host_resolv(host_net: bool) -> String {
    let main = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if host_net {
        return main;
    }
    // Behind systemd-resolved (127.0.0.53) the upstream list is elsewhere.
    let only_local = main
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("nameserver"))
        .all(is_local_nameserver);
    if only_local && let Ok(up) = std::fs::read_to_string(RESOLVED_UPSTREAM) {
        return up;
    }
    main
}

/// `base` (a resolv.conf) with `dns`'s nameservers, search domains and
/// options, combined as `dns.base` says.
pub fn with_dns(base: &str, dns: &DnsConfig) -> String {
    let word = |l: &str| l.split_whitespace().next().map(str::to_string);
    let rest = |l: &str| {
        l.split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (mut servers, mut searches, mut options, mut other) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    if dns.base != DnsBase::None {
        for l in base.lines() {
            match word(l).as_deref() {
                Some("nameserver") => servers.extend(rest(l)),
                Some("search") | Some("domain") => searches.extend(rest(l)),
                Some("options") => options.extend(rest(l)),
                _ => other.push(l.to_string()),
            }
        }
    }
    let given_servers: Vec<String> = dns.nameservers.iter().map(|a| a.to_string()).collect();
    let merge = |host: &mut Vec<String>, given: &[String]| {
        if dns.base == DnsBase::Replace && !given.is_empty() {
            host.clear();
        }
        for g in given {
            if !host.contains(g) {
                host.push(g.clone());
            }
        }
    };
    merge(&mut servers, &given_servers);
    merge(&mut searches, &dns.searches);
    // An option given replaces the host's of the same name.
    for o in &dns.options {
        let name = o.split(':').next().unwrap_or(o);
        options.retain(|h| h.split(':').next() != Some(name));
    }
    merge(&mut options, &dns.options);
    let mut out = String::new();
    for l in other.iter().filter(|l| !l.trim().is_empty()) {
        out.push_str(l);
        out.push('\n');
    }
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

fn put(path: &Path, text: &str) -> Result<(), BundleError> {
    std::fs::write(path, text).map_err(BundleError::io("writing", path))
}

/// Writes the three files for `ctx` in its bundle directory.
pub fn write(
    ctx: &BundleContext,
    req: &ContainerRequest,
    hostname: &str,
) -> Result<EtcFiles, BundleError> {
    let host_net = ctx.namespaces.net == NsChoice::Host;
    let files = EtcFiles {
        hostname: ctx.bundle_dir.join("hostname"),
        hosts: ctx.bundle_dir.join("hosts"),
        resolv_conf: ctx.bundle_dir.join("resolv.conf"),
    };
    let name = if ctx.namespaces.uts == NsChoice::Host {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| hostname.to_string())
    } else {
        hostname.to_string()
    };
    put(&files.hostname, &format!("{name}\n"))?;
    let hosts_text = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts(&name, None))
    } else {
        hosts(&name, ctx.ip)
    };
    let mut hosts_text = hosts_text;
    for (name, ip) in &req.extra_hosts {
        hosts_text.push_str(&format!("{ip}\t{name}\n"));
    }
    put(&files.hosts, &hosts_text)?;
    let mut resolv = resolv_conf(&host_resolv(host_net), host_net);
    if let Some(dns) = &req.dns {
        resolv = with_dns(&resolv, dns);
    }
    put(&files.resolv_conf, &resolv)?;
    Ok(files)
}

#[cfg(test)]
mod dns_tests {
    use super::*;

    const HOST: &str = "search lan\nnameserver 192.168.1.1\noptions ndots:1 edns0\n";

    fn dns(base: DnsBase) -> DnsConfig {
        DnsConfig {
            nameservers: vec!["10.9.9.9".parse().expect("ip")],
            searches: vec!["corp.example".into()],
            options: vec!["ndots:2".into()],
            base,
        }
    }

    #[test]
    fn docker_flags_replace_kubernetes_config_appends() {
        assert_eq!(
            with_dns(HOST, &dns(DnsBase::Replace)),
            "search corp.example\nnameserver 10.9.9.9\noptions ndots:2\n"
        );
        assert_eq!(
            with_dns(HOST, &dns(DnsBase::Append)),
            "search lan corp.example\nnameserver 192.168.1.1\nnameserver 10.9.9.9\noptions edns0 ndots:2\n"
        );
        assert_eq!(
            with_dns(HOST, &dns(DnsBase::None)),
            "search corp.example\nnameserver 10.9.9.9\noptions ndots:2\n"
        );
    }
}
