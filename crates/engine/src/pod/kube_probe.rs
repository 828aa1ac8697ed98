//! A Kubernetes container's probes and lifecycle handlers into
//! [`Probe`]s and [`Action`]s, checked as the API server checks them
//! (exactly one handler kind, ports 1-65535 or a port name, timing fields
//! not negative, a sleep within the grace period) and with kubelet's
//! defaults. A named port is resolved against the container's ports.

use peapod_kube::k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Probe as K8sProbe,
    SleepAction, TCPSocketAction,
};
use peapod_kube::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::probe::{Action, HttpGet, Kind, Probe};
use crate::containers::EngineError;

fn bad(path: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("{path}: {why}"))
}

/// The handler fields set on a probe or lifecycle handler.
struct Handler<'a> {
    exec: Option<&'a ExecAction>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_socket: Option<&'a TCPSocketAction>,
    grpc: Option<&'a GRPCAction>,
    sleep: Option<&'a SleepAction>,
}

impl Handler<'_> {
    /// The one action of this handler; `kinds` names the allowed ones for
    /// the error; `grace` bounds a sleep.
    fn action(
        &self,
        path: &str,
        c: &Container,
        kinds: &str,
        grace: i64,
    ) -> Result<Action, EngineError> {
        let set = [
            self.exec.is_some(),
            self.http_get.is_some(),
            self.tcp_socket.is_some(),
            self.grpc.is_some(),
            self.sleep.is_some(),
        ]
        .iter()
        .filter(|&&s| s)
        .count();
        if set == 0 {
            return Err(bad(path, format!("must specify a handler type: {kinds}")));
        }
        if set > 1 {
            return Err(bad(
                path,
                format!("may not specify more than 1 handler type: keep one of {kinds}"),
            ));
        }
        if let Some(e) = self.exec {
            let cmd = e.command.clone().unwrap_or_default();
            if cmd.is_empty() {
                return Err(bad(&format!("{path}.exec.command"), "is required"));
            }
            return Ok(Action::Exec(cmd));
        }
        if let Some(g) = self.http_get {
            return http_get(&format!("{path}.httpGet"), c, g);
        }
        if let Some(t) = self.tcp_socket {
            let at = format!("{path}.tcpSocket");
            return Ok(Action::TcpSocket {
                host: host(&format!("{at}.host"), t.host.as_deref())?,
                port: port_of(&format!("{at}.port"), c, &t.port)?,
            });
        }
        if let Some(g) = self.grpc {
            return Ok(Action::Grpc {
                port: port_number(&format!("{path}.grpc.port"), g.port)?,
                service: g.service.clone().unwrap_or_default(),
            });
        }
        let s = self.sleep.map_or(0, |s| s.seconds);
        if s < 0 || s > grace {
            return Err(bad(
                &format!("{path}.sleep.seconds"),
                format!(
                    "{s} must be non-negative and at most terminationGracePeriodSeconds ({grace})"
                ),
            ));
        }
        Ok(Action::Sleep(u32::try_from(s).unwrap_or(u32::MAX)))
    }
}

/// A lifecycle handler (postStart or preStop) at `path` of container `c`
/// in a pod whose grace period is `grace` seconds.
pub(super) fn handler(
    path: &str,
    c: &Container,
    h: &LifecycleHandler,
    grace: i64,
) -> Result<Action, EngineError> {
    Handler {
        exec: h.exec.as_ref(),
        http_get: h.http_get.as_ref(),
        tcp_socket: h.tcp_socket.as_ref(),
        grpc: None,
        sleep: h.sleep.as_ref(),
    }
    .action(path, c, "exec, httpGet, tcpSocket or sleep", grace)
}

/// Probe `kind` at `path` of container `c`, with kubelet's defaults.
pub(super) fn probe(
    path: &str,
    c: &Container,
    p: &K8sProbe,
    kind: Kind,
) -> Result<Probe, EngineError> {
    let action = Handler {
        exec: p.exec.as_ref(),
        http_get: p.http_get.as_ref(),
        tcp_socket: p.tcp_socket.as_ref(),
        grpc: p.grpc.as_ref(),
        sleep: None,
    }
    .action(path, c, "exec, httpGet, tcpSocket or grpc", 0)?;
    // A field that is 0 or unset takes its default, as the API server's
    // defaulting does; a negative one is refused.
    let n = |v: Option<i32>, field: &str, default: u32| match v {
        Some(v) if v < 0 => Err(bad(
            &format!("{path}.{field}"),
            format!("{v} must be greater than or equal to 0"),
        )),
        Some(v) if v > 0 => Ok(v as u32),
        _ => Ok(default),
    };
    let success_threshold = n(p.success_threshold, "successThreshold", 1)?;
    if kind != Kind::Readiness && success_threshold != 1 {
        return Err(bad(
            &format!("{path}.successThreshold"),
            format!(
                "{success_threshold} must be 1 for a {} probe",
                kind.word().to_lowercase()
            ),
        ));
    }
    if let Some(g) = p.termination_grace_period_seconds.filter(|&g| g <= 0) {
        return Err(bad(
            &format!("{path}.terminationGracePeriodSeconds"),
            format!("{g} must be greater than 0"),
        ));
    }
    Ok(Probe {
        action,
        initial_delay: n(p.initial_delay_seconds, "initialDelaySeconds", 0)?,
        period: n(p.period_seconds, "periodSeconds", 10)?,
        timeout: n(p.timeout_seconds, "timeoutSeconds", 1)?,
        success_threshold,
        failure_threshold: n(p.failure_threshold, "failureThreshold", 3)?,
    })
}

/// A port number: 1-65535.
fn port_number(path: &str, n: i32) -> Result<u16, EngineError> {
    u16::try_from(n)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| bad(path, format!("{n} must be between 1 and 65535, inclusive")))
}

/// Whether `name` is a valid port name (an IANA_SVC_NAME): at most 15
/// lowercase letters, digits and single inner hyphens, with a letter.
fn port_name_ok(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// A probe's or handler's port: a number, or the name of one of the
/// container's ports.
fn port_of(path: &str, c: &Container, port: &IntOrString) -> Result<u16, EngineError> {
    match port {
        IntOrString::Int(n) => port_number(path, *n),
        IntOrString::String(name) => {
            if !port_name_ok(name) {
                return Err(bad(
                    path,
                    format!(
                        "{name:?} is not a port number or name (at most 15 lowercase letters, \
                         digits and '-', with a letter)"
                    ),
                ));
            }
            let n = c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| {
                    bad(
                        path,
                        format!("no port named {name:?} in the container's ports: name one or use a number"),
                    )
                })?;
            port_number(path, n)
        }
    }
}

/// An optional `host`: a name or an address, nothing that would change the
/// request's URL or headers.
fn host(path: &str, h: Option<&str>) -> Result<Option<String>, EngineError> {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    if h.bytes()
        .any(|b| b.is_ascii_control() || b" /?#@\\".contains(&b))
    {
        return Err(bad(path, format!("{h:?} is not a host name or address")));
    }
    Ok(Some(h.to_string()))
}

/// Whether `name` is an HTTP header name (an RFC 9110 token).
fn header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn http_get(path: &str, c: &Container, g: &HTTPGetAction) -> Result<Action, EngineError> {
    let scheme = g.scheme.clone().unwrap_or_else(|| "HTTP".into());
    if scheme != "HTTP" && scheme != "HTTPS" {
        return Err(bad(
            &format!("{path}.scheme"),
            format!("{scheme:?} is not supported: use HTTP or HTTPS"),
        ));
    }
    let mut headers = Vec::new();
    for (i, h) in g.http_headers.iter().flatten().enumerate() {
        if !header_name_ok(&h.name) {
            return Err(bad(
                &format!("{path}.httpHeaders[{i}].name"),
                format!("{:?} is not an HTTP header name", h.name),
            ));
        }
        if h.value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(bad(
                &format!("{path}.httpHeaders[{i}].value"),
                "may not hold control characters (such as a line break)",
            ));
        }
        headers.push((h.name.clone(), h.value.clone()));
    }
    let p = g
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    if p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(bad(
            &format!("{path}.path"),
            format!("{p:?} may not hold spaces or control characters: percent-encode them"),
        ));
    }
    Ok(Action::HttpGet(HttpGet {
        host: host(&format!("{path}.host"), g.host.as_deref())?,
        port: port_of(&format!("{path}.port"), c, &g.port)?,
        path: if p.starts_with('/') {
            p
        } else {
            format!("/{p}")
        },
        headers,
        scheme,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use peapod_kube::k8s_openapi::api::core::v1::ContainerPort;

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

    fn probe_of(yaml: serde_json::Value, kind: Kind) -> Result<Probe, String> {
        let p: K8sProbe = serde_json::from_value(yaml).expect("probe");
        probe("spec.containers[0].livenessProbe", &container(), &p, kind).map_err(|e| e.to_string())
    }

    #[test]
    fn probes_take_one_handler_and_valid_ports() {
        use serde_json::json;
        let ok = probe_of(
            json!({"httpGet": {"port": "web", "scheme": "HTTPS"}, "periodSeconds": 0}),
            Kind::Liveness,
        )
        .expect("https probe");
        assert_eq!(ok.period, 10);
        let Action::HttpGet(g) = ok.action else {
            panic!("{:?}", ok.action)
        };
        assert_eq!(
            (g.port, g.path.as_str(), g.scheme.as_str()),
            (8443, "/", "HTTPS")
        );
        let grpc = probe_of(json!({"grpc": {"port": 9000}}), Kind::Readiness).expect("grpc");
        assert_eq!(
            grpc.action,
            Action::Grpc {
                port: 9000,
                service: String::new()
            }
        );
        for (yaml, want) in [
            (json!({}), "livenessProbe: must specify a handler type"),
            (
                json!({"grpc": {"port": 1}, "tcpSocket": {"port": 1}}),
                "livenessProbe: may not specify more than 1 handler type",
            ),
            (
                json!({"grpc": {"port": 70000}}),
                "livenessProbe.grpc.port: 70000 must be between 1 and 65535",
            ),
            (
                json!({"tcpSocket": {"port": 0}}),
                "livenessProbe.tcpSocket.port: 0 must be between",
            ),
            (
                json!({"tcpSocket": {"port": "metrics"}}),
                "livenessProbe.tcpSocket.port: no port named \"metrics\"",
            ),
            (
                json!({"httpGet": {"port": "Web_1"}}),
                "livenessProbe.httpGet.port: \"Web_1\" is not a port number or name",
            ),
            (
                json!({"httpGet": {"port": 80, "scheme": "FTP"}}),
                "livenessProbe.httpGet.scheme: \"FTP\" is not supported",
            ),
            (
                json!({"httpGet": {"port": 80, "httpHeaders": [{"name": "X", "value": "a\r\nB: c"}]}}),
                "livenessProbe.httpGet.httpHeaders[0].value: may not hold control",
            ),
            (
                json!({"httpGet": {"port": 80, "httpHeaders": [{"name": "X Y", "value": ""}]}}),
                "livenessProbe.httpGet.httpHeaders[0].name",
            ),
            (
                json!({"exec": {"command": []}}),
                "livenessProbe.exec.command: is required",
            ),
            (
                json!({"exec": {"command": ["true"]}, "timeoutSeconds": -1}),
                "livenessProbe.timeoutSeconds: -1 must be greater than or equal to 0",
            ),
            (
                json!({"exec": {"command": ["true"]}, "successThreshold": 2}),
                "livenessProbe.successThreshold: 2 must be 1 for a liveness probe",
            ),
        ] {
            let err = probe_of(yaml.clone(), Kind::Liveness).expect_err(&yaml.to_string());
            assert!(err.contains(want), "{yaml}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let r = probe_of(
            json!({"exec": {"command": ["true"]}, "successThreshold": 2}),
            Kind::Readiness,
        )
        .expect("readiness may need 2 successes");
        assert_eq!(r.success_threshold, 2);
    }

    #[test]
    fn handlers_sleep_within_the_grace_period() {
        use serde_json::json;
        let h = |v: serde_json::Value| -> Result<Action, String> {
            let h: LifecycleHandler = serde_json::from_value(v).expect("handler");
            handler("spec.containers[0].lifecycle.preStop", &container(), &h, 30)
                .map_err(|e| e.to_string())
        };
        assert_eq!(h(json!({"sleep": {"seconds": 5}})), Ok(Action::Sleep(5)));
        assert_eq!(h(json!({"sleep": {"seconds": 0}})), Ok(Action::Sleep(0)));
        let err = h(json!({"sleep": {"seconds": 31}})).expect_err("too long");
        assert!(
            err.starts_with("spec.containers[0].lifecycle.preStop.sleep.seconds: 31 must be"),
            "{err}"
        );
        let err = h(json!({"sleep": {"seconds": 1}, "exec": {"command": ["true"]}}))
            .expect_err("two kinds");
        assert!(
            err.contains("may not specify more than 1 handler type"),
            "{err}"
        );
        assert!(h(json!({})).is_err());
    }
}
