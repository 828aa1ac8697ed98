//! The container's /etc/hostname, /etc/hosts and /etc/resolv.conf: written
//! in the bundle directory and bind-mounted (read-write, as Docker does).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{BundleContext, BundleError, NsChoice};

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

fn put(path: &Path, text: &str) -> Result<(), BundleError> {
    std::fs::write(path, text).map_err(BundleError::io("writing", path))
}

/// Writes the three files for `ctx` in its bundle directory.
pub fn write(ctx: &BundleContext, hostname: &str) -> Result<EtcFiles, BundleError> {
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
    put(&files.hosts, &hosts_text)?;
    put(
        &files.resolv_conf,
        &resolv_conf(&host_resolv(host_net), host_net),
    )?;
    Ok(files)
}
