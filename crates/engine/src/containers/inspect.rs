//! `inspect`: everything known about one container, in the shape of
//! `docker inspect` (a JSON object with Docker's keys), gathered from its
//! record, its bundle's config.json, its image, its snapshot and, while it
//! runs, its namespaces under /proc.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::summary::protocol;
use super::{Engine, EngineError, Status};
use crate::record::Record;
use crate::request::{NetworkMode, PortMapping};
use crate::restart::RestartPolicy;
use crate::time::format_rfc3339_nano;

/// Docker's "never" time.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The namespaces `inspect` shows for a running container.
pub const NAMESPACES: [&str; 7] = ["cgroup", "ipc", "mnt", "net", "pid", "uts", "user"];

impl Engine {
    /// `docker inspect`'s object for container `key` (name, id or prefix).
    pub fn inspect(&self, key: &str) -> Result<Value, EngineError> {
        let record = self.store.resolve(key)?;
        Ok(self.inspect_record(&record))
    }

    /// `docker inspect`'s object for `record`, as of now.
    pub fn inspect_record(&self, r: &Record) -> Value {
        let view = self.view(r);
        let req = &r.setup.request;
        let process = bundle_process(&r.setup.bundle);
        let (pid, exit_code, finished_at, oom_killed) = match view.status {
            Status::Running { pid, .. } => (pid, 0, None, false),
            Status::Created => (0, 0, None, false),
            Status::Restarting {
                exit_code,
                finished_at,
            } => (0, exit_code, Some(finished_at), false),
            Status::Exited {
                code,
                oom_killed,
                finished_at,
            } => (0, code, Some(finished_at), oom_killed),
        };
        let paused = pid != 0
            && self
                .runtime
                .state(&r.id)
                .is_ok_and(|s| s.status == pea_runtime::Status::Paused);
        let images = self.images().ok();
        let image_config = images
            .as_ref()
            .and_then(|svc| svc.load(&r.setup.image_id).ok())
            .and_then(|img| img.config.config);
        let cmd = if !req.command.is_empty() {
            Some(req.command.clone())
        } else {
            image_config.as_ref().and_then(|c| c.cmd.clone())
        };
        let entrypoint = match &req.entrypoint {
            Some(e) => Some(e.clone()),
            None => image_config.as_ref().and_then(|c| c.entrypoint.clone()),
        };
        let mut labels = image_config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        labels.extend(req.labels.clone());
        let graph = images
            .as_ref()
            .and_then(|svc| svc.snapshots().graph_driver(&r.setup.snapshot).ok())
            .map(|mut g| {
                g.data
                    .insert("MergedDir".into(), r.setup.rootfs.display().to_string());
                serde_json::to_value(g).unwrap_or(Value::Null)
            })
            .unwrap_or(Value::Null);
        let bundle = &r.setup.bundle;
        let known = |name: &str| {
            let p = bundle.join(name);
            if p.exists() {
                p.display().to_string()
            } else {
                String::new()
            }
        };
        json!({
            "Id": r.id,
            "Name": format!("/{}", r.name),
            "Created": format_rfc3339_nano(r.created),
            "Path": r.command.first().cloned().unwrap_or_default(),
            "Args": r.command.get(1..).unwrap_or_default(),
            "State": {
                "Status": view.status.word(),
                "Running": matches!(view.status, Status::Running { .. }),
                "Paused": paused,
                "Restarting": matches!(view.status, Status::Restarting { .. }),
                "OOMKilled": oom_killed,
                "Dead": false,
                "Pid": pid,
                "ExitCode": exit_code,
                "Error": "",
                "StartedAt": r.started_at.clone().unwrap_or_else(|| ZERO_TIME.into()),
                "FinishedAt": finished_at.map(format_rfc3339_nano).unwrap_or_else(|| ZERO_TIME.into()),
                "SupervisorPid": r.supervisor.map(|p| p.pid).unwrap_or(0),
                "MonitorPid": r.monitor.map(|p| p.pid).unwrap_or(0),
                "SupervisorAlive": view.supervisor_alive,
            },
            "Image": r.setup.image_id,
            "ResolvConfPath": known("resolv.conf"),
            "HostnamePath": known("hostname"),
            "HostsPath": known("hosts"),
            "LogPath": r.log_path,
            "RestartCount": r.restart_count,
            "Driver": self.storage_driver,
            "Config": {
                "Hostname": r.setup.hostname,
                "User": req.user.clone().unwrap_or_default(),
                "Tty": r.setup.tty,
                "OpenStdin": r.setup.interactive,
                "Env": process.get("env").cloned().unwrap_or_else(|| json!([])),
                "Cmd": cmd,
                "Entrypoint": entrypoint,
                "Image": r.image,
                "WorkingDir": process.get("cwd").cloned().unwrap_or_else(|| json!("/")),
                "Labels": labels,
                "StopSignal": signal_name(r.setup.stop_signal),
                "StopTimeout": r.setup.stop_timeout,
            },
            "HostConfig": {
                "RestartPolicy": restart_policy(r.restart_policy),
                "AutoRemove": req.auto_remove,
                "NetworkMode": network_mode(&req.network),
                "Privileged": req.privileged,
                "ReadonlyRootfs": req.read_only,
                "Memory": req.resources.memory.unwrap_or(0),
                "MemorySwap": req.resources.memory_swap.unwrap_or(0),
                "NanoCpus": req.resources.nano_cpus.unwrap_or(0),
                "CpuShares": req.resources.cpu_shares.unwrap_or(0),
                "CpusetCpus": req.resources.cpuset_cpus.clone().unwrap_or_default(),
                "PidsLimit": req.resources.pids_limit,
                "CapAdd": req.cap_add,
                "CapDrop": req.cap_drop,
                "Init": req.init,
                "PortBindings": port_map(&req.publish, false),
            },
            "GraphDriver": graph,
            "Mounts": r.setup.mounts,
            "NetworkSettings": network_settings(r),
            "Namespaces": if pid != 0 { namespaces(pid) } else { Value::Object(Map::new()) },
        })
    }
}

/// The `process` object of the bundle's config.json (empty when unreadable).
fn bundle_process(bundle: &Path) -> Map<String, Value> {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|mut v| match v.get_mut("process").map(Value::take) {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
}

fn signal_name(n: i32) -> String {
    nix::sys::signal::Signal::try_from(n)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| n.to_string())
}

fn restart_policy(p: RestartPolicy) -> Value {
    let (name, max) = match p {
        RestartPolicy::No => ("no", 0),
        RestartPolicy::OnFailure { max_retries } => ("on-failure", max_retries.unwrap_or(0)),
        RestartPolicy::Always => ("always", 0),
        RestartPolicy::UnlessStopped => ("unless-stopped", 0),
    };
    json!({"Name": name, "MaximumRetryCount": max})
}

fn network_mode(m: &NetworkMode) -> String {
    match m {
        NetworkMode::Default | NetworkMode::Bridge(None) => "bridge".into(),
        NetworkMode::Bridge(Some(n)) => n.clone(),
        NetworkMode::None => "none".into(),
        NetworkMode::Host => "host".into(),
        NetworkMode::Container(c) => format!("container:{c}"),
        NetworkMode::Namespace(p) => format!("ns:{}", p.display()),
    }
}

/// `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`; `bound`:
/// unset host addresses shown as 0.0.0.0 (NetworkSettings) rather than
/// "" (HostConfig, as asked).
fn port_map(ports: &[PortMapping], bound: bool) -> Value {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in ports {
        let ip = match (p.host_ip, bound) {
            (Some(ip), _) => ip.to_string(),
            (None, true) => "0.0.0.0".into(),
            (None, false) => String::new(),
        };
        out.entry(format!("{}/{}", p.container_port, protocol(p.protocol)))
            .or_default()
            .push(json!({"HostIp": ip, "HostPort": p.host_port.to_string()}));
    }
    json!(out)
}

fn network_settings(r: &Record) -> Value {
    let Some(a) = &r.setup.network else {
        return json!({
            "IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": "",
            "Ports": {}, "SandboxKey": "", "Networks": {},
        });
    };
    let ip = a.ip.map(|i| i.to_string()).unwrap_or_default();
    let gw = a.gateway.map(|i| i.to_string()).unwrap_or_default();
    let mac = a.mac.clone().unwrap_or_default();
    json!({
        "IPAddress": ip,
        "IPPrefixLen": a.prefix_len.unwrap_or(0),
        "Gateway": gw,
        "MacAddress": mac,
        "Ports": port_map(&a.ports, true),
        "SandboxKey": a.netns,
        "Networks": {
            a.network.clone(): {
                "IPAddress": ip, "IPPrefixLen": a.prefix_len.unwrap_or(0),
                "Gateway": gw, "MacAddress": mac,
            }
        },
    })
}

/// `{"net": "net:[4026532...]", ...}` of process `pid`.
pub fn namespaces(pid: i32) -> Value {
    let mut out = Map::new();
    for kind in NAMESPACES {
        if let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/{kind}")) {
            out.insert(kind.into(), json!(link.display().to_string()));
        }
    }
    Value::Object(out)
}

/// A template `render_template` cannot print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Renders a `{{.A.B}}`-style template (only field paths and literal text,
/// as scripts use `docker inspect -f`): strings print without quotes,
/// other values as compact JSON.
pub fn render_template(template: &str, value: &Value) -> Result<String, TemplateError> {
    let bad = |why: &str| {
        TemplateError(format!(
            "template {template:?}: {why}; only {{{{.Field.Sub}}}} paths (and {{{{json .Field}}}}) are supported"
        ))
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| bad("an unclosed {{"))?;
        let action = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let (json_out, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        if !path.starts_with('.') || path.contains(char::is_whitespace) {
            return Err(bad(&format!("unsupported action {action:?}")));
        }
        let mut v = value;
        for field in path[1..].split('.').filter(|f| !f.is_empty()) {
            v = v
                .get(field)
                .ok_or_else(|| bad(&format!("no field {field:?} in {path}")))?;
        }
        match v {
            Value::String(s) if !json_out => out.push_str(s),
            Value::Null if !json_out => out.push_str("<no value>"),
            other => out.push_str(&other.to_string()),
        }
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err(bad("a stray }}"));
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_print_paths() {
        let v = json!({"State": {"ExitCode": 3, "Status": "exited"}, "Name": "/a", "Args": ["x"]});
        assert_eq!(render_template("{{.State.ExitCode}}", &v).unwrap(), "3");
        assert_eq!(
            render_template("{{.Name}} is {{ .State.Status }}", &v).unwrap(),
            "/a is exited"
        );
        assert_eq!(render_template("{{json .Args}}", &v).unwrap(), "[\"x\"]");
        assert_eq!(render_template("{{json .Name}}", &v).unwrap(), "\"/a\"");
        assert_eq!(render_template("{{.}}", &v).unwrap(), v.to_string());
        for bad in ["{{.Nope}}", "{{if .Name}}x{{end}}", "{{.Name", "x}}"] {
            let e = render_template(bad, &v).unwrap_err().to_string();
            assert!(e.contains("supported"), "{bad}: {e}");
        }
    }
}
