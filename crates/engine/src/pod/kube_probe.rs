//! A Kubernetes container's probes and lifecycle handlers into
//! [`Probe`]s and [`Action`]s with kubelet's defaults; a named port is
//! resolved against the container's ports. The manifest was checked as
//! the API server checks it (peapod-kube's validation: one handler kind,
//! ports, schemes, headers, timing fields, a sleep within the grace
//! period) before it gets here; what is left to refuse is what cannot be
//! converted.

use peapod_kube::k8s_openapi::api::core::v1::{
    Container, HTTPGetAction, LifecycleHandler, Probe as K8sProbe,
};
use peapod_kube::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::probe::{Action, HttpGet, Probe};
use crate::containers::EngineError;

fn bad(path: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("{path}: {why}"))
}

/// A lifecycle handler (postStart or preStop) at `path` of container `c`.
pub(super) fn handler(
    path: &str,
    c: &Container,
    h: &LifecycleHandler,
) -> Result<Action, EngineError> {
    if let Some(e) = &h.exec {
        return Ok(Action::Exec(e.command.clone().unwrap_or_default()));
    }
    if let Some(g) = &h.http_get {
        return http_get(&format!("{path}.httpGet"), c, g);
    }
    if let Some(t) = &h.tcp_socket {
        return Ok(Action::TcpSocket {
            host: t.host.clone().filter(|h| !h.is_empty()),
            port: port_of(&format!("{path}.tcpSocket.port"), c, &t.port)?,
        });
    }
    if let Some(s) = &h.sleep {
        let seconds = u32::try_from(s.seconds.max(0)).unwrap_or(u32::MAX);
        return Ok(Action::Sleep(seconds));
    }
    Err(bad(
        path,
        "needs exactly one handler (exec, httpGet, tcpSocket or sleep)",
    ))
}

/// A probe at `path` of container `c`, with kubelet's defaults.
pub(super) fn probe(path: &str, c: &Container, p: &K8sProbe) -> Result<Probe, EngineError> {
    let action = if let Some(e) = &p.exec {
        Action::Exec(e.command.clone().unwrap_or_default())
    } else if let Some(g) = &p.http_get {
        http_get(&format!("{path}.httpGet"), c, g)?
    } else if let Some(t) = &p.tcp_socket {
        Action::TcpSocket {
            host: t.host.clone().filter(|h| !h.is_empty()),
            port: port_of(&format!("{path}.tcpSocket.port"), c, &t.port)?,
        }
    } else if let Some(g) = &p.grpc {
        Action::Grpc {
            port: port_number(&format!("{path}.grpc.port"), g.port)?,
            service: g.service.clone().unwrap_or_default(),
        }
    } else {
        return Err(bad(
            path,
            "needs exactly one handler (exec, httpGet, tcpSocket or grpc)",
        ));
    };
    // 0 or unset is the default, as the API server's defaulting does.
    let n = |v: Option<i32>, default: u32| match v {
        Some(v) if v > 0 => v as u32,
        _ => default,
    };
    Ok(Probe {
        action,
        initial_delay: n(p.initial_delay_seconds, 0),
        period: n(p.period_seconds, 10),
        timeout: n(p.timeout_seconds, 1),
        success_threshold: n(p.success_threshold, 1),
        failure_threshold: n(p.failure_threshold, 3),
    })
}

fn port_number(path: &str, n: i32) -> Result<u16, EngineError> {
    u16::try_from(n)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| bad(path, format!("{n} is not a port number (1..65535)")))
}

/// A probe's or handler's port: a number, or the name of one of the
/// container's ports.
fn port_of(path: &str, c: &Container, port: &IntOrString) -> Result<u16, EngineError> {
    match port {
        IntOrString::Int(n) => port_number(path, *n),
        IntOrString::String(name) => {
            let n = c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("{name:?} is neither a port number nor the name of a port of this container"),
                    )
                })?;
            port_number(path, n)
        }
    }
}

fn http_get(path: &str, c: &Container, g: &HTTPGetAction) -> Result<Action, EngineError> {
    let p = g
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(Action::HttpGet(HttpGet {
        host: g.host.clone().filter(|h| !h.is_empty()),
        port: port_of(&format!("{path}.port"), c, &g.port)?,
        path: if p.starts_with('/') {
            p
        } else {
            format!("/{p}")
        },
        headers: g
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
        scheme: g.scheme.clone().unwrap_or_else(|| "HTTP".into()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use peapod_kube::k8s_openapi::api::core::v1::ContainerPort;
    use serde_json::json;

    fn container() -> Container {
        Container {
            name: "app".into(),
            ports: Some(vec![ContainerPort {
                name: Some("web".into()),
                container_port: 8443,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn probe_of(v: serde_json::Value) -> Result<Probe, String> {
        let p: K8sProbe = serde_json::from_value(v).expect("probe");
        probe("spec.containers[0].livenessProbe", &container(), &p).map_err(|e| e.to_string())
    }

    #[test]
    fn probes_get_defaults_and_named_ports() {
        let p = probe_of(json!({
            "httpGet": {"port": "web", "scheme": "HTTPS", "path": "healthz",
                        "httpHeaders": [{"name": "Host", "value": "svc"}]},
            "periodSeconds": 0, "timeoutSeconds": 2
        }))
        .expect("https probe");
        assert_eq!((p.period, p.timeout, p.failure_threshold), (10, 2, 3));
        assert_eq!(
            p.action,
            Action::HttpGet(HttpGet {
                host: None,
                port: 8443,
                path: "/healthz".into(),
                headers: vec![("Host".into(), "svc".into())],
                scheme: "HTTPS".into(),
            })
        );
        let g = probe_of(json!({"grpc": {"port": 9000, "service": "s"}})).expect("grpc");
        assert_eq!(
            g.action,
            Action::Grpc {
                port: 9000,
                service: "s".into()
            }
        );
        let err = probe_of(json!({"tcpSocket": {"port": "metrics"}})).expect_err("no such port");
        assert_eq!(
            err,
            "spec.containers[0].livenessProbe.tcpSocket.port: \"metrics\" is neither a port \
             number nor the name of a port of this container"
        );
    }

    #[test]
    fn handlers_sleep() {
        let h: LifecycleHandler =
            serde_json::from_value(json!({"sleep": {"seconds": 5}})).expect("handler");
        assert_eq!(
            handler("spec.containers[0].lifecycle.preStop", &container(), &h).ok(),
            Some(Action::Sleep(5))
        );
    }
}
