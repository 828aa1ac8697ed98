//! Host ports for `-p`: refuse ports another host socket or another of this
//! engine's attachments holds, and pick free ones for host port 0.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use peapod_net::cni::CachedAttachment;
use serde_json::{Map, Value, json};

use super::NetworkError;
use crate::request::{PortMapping, Protocol};

/// A host port some attachment already publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Published {
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub protocol: Protocol,
}

impl Published {
    fn clashes(&self, ip: Option<IpAddr>, port: u16, protocol: Protocol) -> bool {
        self.port == port
            && self.protocol == protocol
            && (self.ip.is_none_or(|a| a.is_unspecified())
                || ip.is_none_or(|b| b.is_unspecified())
                || self.ip == ip)
    }
}

/// The host ports published by cached attachments (their `portMappings`).
pub(super) fn published(cached: &[CachedAttachment]) -> Vec<Published> {
    let mut out = Vec::new();
    for c in cached {
        let Some(Value::Array(maps)) = c.capability_args.get("portMappings") else {
            continue;
        };
        for m in maps {
            let Some(port) = m
                .get("hostPort")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            let protocol = match m.get("protocol").and_then(Value::as_str) {
                Some("udp") => Protocol::Udp,
                _ => Protocol::Tcp,
            };
            let ip = m
                .get("hostIP")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            out.push(Published { ip, port, protocol });
        }
    }
    out
}

pub(super) fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// Check every requested host port and choose the free ones for port 0.
/// Returns the mappings with their final host ports.
pub(super) fn resolve(
    requested: &[PortMapping],
    taken: &[Published],
) -> Result<Vec<PortMapping>, NetworkError> {
    let mut taken = taken.to_vec();
    let mut out = Vec::with_capacity(requested.len());
    for m in requested {
        if m.container_port == 0 {
            return Err(NetworkError::BadPort(format!(
                "container port 0 in a port mapping: give the port the container listens on ({}/{})",
                m.host_port,
                proto_name(m.protocol)
            )));
        }
        let port = if m.host_port == 0 {
            pick_free(m.host_ip, m.protocol, &taken)?
        } else {
            if taken
                .iter()
                .any(|t| t.clashes(m.host_ip, m.host_port, m.protocol))
            {
                return Err(in_use(m.host_port, m.protocol));
            }
            bind_probe(m.host_ip, m.host_port, m.protocol)?;
            m.host_port
        };
        taken.push(Published {
            ip: m.host_ip,
            port,
            protocol: m.protocol,
        });
        out.push(PortMapping {
            host_port: port,
            ..m.clone()
        });
    }
    Ok(out)
}

fn in_use(port: u16, protocol: Protocol) -> NetworkError {
    NetworkError::PortInUse {
        port,
        protocol: proto_name(protocol),
    }
}

fn addr(ip: Option<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port)
}

/// Bind the port on the host (then release it): proves no host socket holds
/// it. Port 0 binds any free port and returns it.
fn bind_probe(ip: Option<IpAddr>, port: u16, protocol: Protocol) -> Result<u16, NetworkError> {
    let at = addr(ip, port);
    let bound = match protocol {
        Protocol::Tcp => TcpListener::bind(at).and_then(|l| l.local_addr()),
        Protocol::Udp => UdpSocket::bind(at).and_then(|s| s.local_addr()),
    };
    match bound {
        Ok(a) => Ok(a.port()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(in_use(port, protocol)),
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
            Err(NetworkError::BadPort(format!(
                "host IP {} is not an address of this host: publish on one of its addresses or leave the IP out",
                at.ip()
            )))
        }
        Err(e) => Err(NetworkError::BadPort(format!(
            "cannot check host port {port}/{} on {}: {e}",
            proto_name(protocol),
            at.ip()
        ))),
    }
}

fn pick_free(
    ip: Option<IpAddr>,
    protocol: Protocol,
    taken: &[Published],
) -> Result<u16, NetworkError> {
    for _ in 0..200 {
        let port = bind_probe(ip, 0, protocol)?;
        if !taken.iter().any(|t| t.clashes(ip, port, protocol)) {
            return Ok(port);
        }
    }
    Err(NetworkError::BadPort(format!(
        "no free host port for {}: give one explicitly",
        proto_name(protocol)
    )))
}

/// The `portMappings` capability argument for the portmap plugin.
pub(super) fn capability_args(ports: &[PortMapping]) -> Map<String, Value> {
    let mut caps = Map::new();
    if ports.is_empty() {
        return caps;
    }
    let maps: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut m = json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": proto_name(p.protocol),
            });
            if let Some(ip) = p.host_ip {
                m["hostIP"] = json!(ip.to_string());
            }
            m
        })
        .collect();
    caps.insert("portMappings".into(), Value::Array(maps));
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clashes_with_wildcards() {
        let p = Published {
            ip: None,
            port: 8080,
            protocol: Protocol::Tcp,
        };
        let lo = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(p.clashes(lo, 8080, Protocol::Tcp));
        assert!(!p.clashes(lo, 8080, Protocol::Udp));
        assert!(!p.clashes(lo, 8081, Protocol::Tcp));
        let q = Published { ip: lo, ..p };
        assert!(!q.clashes(Some("10.0.0.1".parse().unwrap()), 8080, Protocol::Tcp));
        assert!(q.clashes(None, 8080, Protocol::Tcp));
    }

    #[test]
    fn held_port_is_refused_and_zero_is_picked() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let req = PortMapping {
            host_ip: None,
            host_port: port,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let e = resolve(std::slice::from_ref(&req), &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("port {port}/tcp is already in use on the host: pick another host port")
        );
        let any = PortMapping {
            host_port: 0,
            ..req.clone()
        };
        let got = resolve(&[any.clone(), any], &[]).unwrap();
        assert!(got[0].host_port != 0 && got[0].host_port != got[1].host_port);
        let caps = capability_args(&got);
        assert_eq!(caps["portMappings"][0]["containerPort"], 80);
        assert!(caps["portMappings"][0].get("hostIP").is_none());
    }
}
