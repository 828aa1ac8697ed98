//! Pod spec checks: containers, ports, resources, volumes, probes, env.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, EnvVar, ExecAction, HTTPGetAction, LifecycleHandler, PodSpec, Probe,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::dns::{LABEL_RULE, is_dns1123_label, is_port_name};
use super::{FieldErrors, RestartRule};
use crate::quantity::Quantity;

/// The `fieldRef.fieldPath` values peapod can fill in.
const FIELD_PATHS: [&str; 6] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "status.podIP",
    "status.hostIP",
];

/// The `resourceFieldRef.resource` values.
const RESOURCE_FIELDS: [&str; 6] = [
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

/// Checks `spec`, found at `path` (`spec` or `spec.template.spec`).
pub(crate) fn pod_spec(spec: &PodSpec, path: &str, rule: RestartRule, errors: &mut FieldErrors) {
    restart_policy(spec.restart_policy.as_deref(), path, rule, errors);
    if let Some(seconds) = spec.termination_grace_period_seconds
        && seconds < 0
    {
        errors.push(
            format!("{path}.terminationGracePeriodSeconds"),
            format!("must not be negative (got {seconds})"),
        );
    }
    if spec.active_deadline_seconds.is_some_and(|s| s <= 0) {
        errors.push(
            format!("{path}.activeDeadlineSeconds"),
            "must be greater than 0",
        );
    }
    let volumes = volumes(spec, path, errors);
    let grace = spec.termination_grace_period_seconds.unwrap_or(30);
    if spec.containers.is_empty() {
        errors.push(
            format!("{path}.containers"),
            "at least one container is required",
        );
    }
    let mut names = BTreeSet::new();
    let init = spec.init_containers.iter().flatten();
    let lists = [
        ("initContainers", init.collect::<Vec<_>>()),
        ("containers", spec.containers.iter().collect()),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.into_iter().enumerate() {
            let at = format!("{path}.{list}[{i}]");
            if !c.name.is_empty() && !names.insert(c.name.as_str()) {
                errors.push(
                    format!("{at}.name"),
                    format!("duplicate container name {:?}", c.name),
                );
            }
            // Only a sidecar (restartPolicy: Always) of the init
            // containers may have probes or lifecycle handlers.
            if list == "initContainers" && c.restart_policy.as_deref() != Some("Always") {
                for (field, set) in [
                    ("lifecycle", c.lifecycle.is_some()),
                    ("livenessProbe", c.liveness_probe.is_some()),
                    ("readinessProbe", c.readiness_probe.is_some()),
                    ("startupProbe", c.startup_probe.is_some()),
                ] {
                    if set {
                        errors.push(
                            format!("{at}.{field}"),
                            "may not be set for init containers without restartPolicy: Always",
                        );
                    }
                }
            }
            container(c, &at, &volumes, grace, errors);
        }
    }
    if let Some(resources) = &spec.resources {
        requirements(resources, &format!("{path}.resources"), errors);
    }
    quantities(spec.overhead.as_ref(), &format!("{path}.overhead"), errors);
}

fn restart_policy(policy: Option<&str>, path: &str, rule: RestartRule, errors: &mut FieldErrors) {
    let at = format!("{path}.restartPolicy");
    match (rule, policy) {
        (RestartRule::Pod, None | Some("Always" | "OnFailure" | "Never")) => {}
        (RestartRule::Pod, Some(other)) => errors.push(
            at,
            format!("unsupported value {other:?} (Always, OnFailure or Never)"),
        ),
        (RestartRule::Job, Some("OnFailure" | "Never")) => {}
        (RestartRule::Job, None) => errors.push(at, "required for a Job: OnFailure or Never"),
        (RestartRule::Job, Some(other)) => errors.push(
            at,
            format!("unsupported value {other:?} for a Job (OnFailure or Never)"),
        ),
        (RestartRule::AlwaysOnly, None | Some("Always")) => {}
        (RestartRule::AlwaysOnly, Some(other)) => errors.push(
            at,
            format!("unsupported value {other:?} for a Deployment or ReplicaSet (Always only)"),
        ),
    }
}

/// Checks the volume list; returns the defined names.
fn volumes<'s>(spec: &'s PodSpec, path: &str, errors: &mut FieldErrors) -> BTreeSet<&'s str> {
    let mut names = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        let at = format!("{path}.volumes[{i}].name");
        if volume.name.is_empty() {
            errors.push(at, "required");
        } else if !is_dns1123_label(&volume.name) {
            errors.push(
                at,
                format!("{:?} is not a DNS-1123 label ({LABEL_RULE})", volume.name),
            );
        } else if !names.insert(volume.name.as_str()) {
            errors.push(at, format!("duplicate volume name {:?}", volume.name));
        }
        if let Some(size) = volume
            .empty_dir
            .as_ref()
            .and_then(|e| e.size_limit.as_ref())
        {
            quantity(
                size,
                &format!("{path}.volumes[{i}].emptyDir.sizeLimit"),
                errors,
            );
        }
    }
    names
}

/// Checks container `c` of a pod whose grace period is `grace` seconds.
fn container(
    c: &Container,
    at: &str,
    volumes: &BTreeSet<&str>,
    grace: i64,
    errors: &mut FieldErrors,
) {
    if c.name.is_empty() {
        errors.push(format!("{at}.name"), "required");
    } else if !is_dns1123_label(&c.name) {
        errors.push(
            format!("{at}.name"),
            format!("{:?} is not a DNS-1123 label ({LABEL_RULE})", c.name),
        );
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        errors.push(format!("{at}.image"), "required");
    }
    let port_names = ports(c, at, errors);
    if let Some(resources) = &c.resources {
        requirements(resources, &format!("{at}.resources"), errors);
    }
    let mut mount_paths = BTreeSet::new();
    for (i, mount) in c.volume_mounts.iter().flatten().enumerate() {
        let m = format!("{at}.volumeMounts[{i}]");
        if mount.name.is_empty() {
            errors.push(format!("{m}.name"), "required");
        } else if !volumes.contains(mount.name.as_str()) {
            errors.push(
                format!("{m}.name"),
                format!("no volume named {:?} in the pod", mount.name),
            );
        }
        if mount.mount_path.is_empty() {
            errors.push(format!("{m}.mountPath"), "required");
        } else if !mount_paths.insert(mount.mount_path.as_str()) {
            errors.push(
                format!("{m}.mountPath"),
                format!("{:?} is mounted twice", mount.mount_path),
            );
        }
    }
    for (field, probe_value) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(p) = probe_value {
            // Liveness and startup probes pass on one success.
            let once = field != "readinessProbe";
            probe(p, &format!("{at}.{field}"), &port_names, once, errors);
        }
    }
    if let Some(lifecycle) = &c.lifecycle {
        for (field, hook) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            if let Some(h) = hook {
                let at = format!("{at}.lifecycle.{field}");
                handler(h, &at, &port_names, grace, errors);
            }
        }
    }
    for (i, var) in c.env.iter().flatten().enumerate() {
        env(var, &format!("{at}.env[{i}]"), errors);
    }
}

/// Checks the ports; returns the names given to them.
fn ports<'c>(c: &'c Container, at: &str, errors: &mut FieldErrors) -> BTreeSet<&'c str> {
    let mut names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let p = format!("{at}.ports[{i}]");
        port_number(port.container_port, &format!("{p}.containerPort"), errors);
        if let Some(host) = port.host_port
            && host != 0
        {
            port_number(host, &format!("{p}.hostPort"), errors);
        }
        if let Some(protocol) = port.protocol.as_deref()
            && !matches!(protocol, "TCP" | "UDP" | "SCTP")
        {
            errors.push(
                format!("{p}.protocol"),
                format!("unsupported value {protocol:?} (TCP, UDP or SCTP)"),
            );
        }
        if let Some(name) = port.name.as_deref() {
            if !is_port_name(name) {
                errors.push(
                    format!("{p}.name"),
                    format!("{name:?} is not a port name (at most 15 lowercase letters, digits and '-', with a letter)"),
                );
            } else if !names.insert(name) {
                errors.push(format!("{p}.name"), format!("duplicate port name {name:?}"));
            }
        }
    }
    names
}

fn port_number(port: i32, path: &str, errors: &mut FieldErrors) {
    if !(1..=65535).contains(&port) {
        errors.push(path, format!("{port} is not a port number (1..65535)"));
    }
}

/// A probe or hook port: a number, or the name of one of the container's ports.
fn target_port(
    port: &IntOrString,
    path: &str,
    port_names: &BTreeSet<&str>,
    errors: &mut FieldErrors,
) {
    match port {
        IntOrString::Int(n) => port_number(*n, path, errors),
        IntOrString::String(name) if !port_names.contains(name.as_str()) => {
            errors.push(
                path,
                format!(
                    "{name:?} is neither a port number nor the name of a port of this container"
                ),
            );
        }
        IntOrString::String(_) => {}
    }
}

fn probe(p: &Probe, at: &str, port_names: &BTreeSet<&str>, once: bool, errors: &mut FieldErrors) {
    let handlers: Vec<&str> = [
        ("exec", p.exec.is_some()),
        ("httpGet", p.http_get.is_some()),
        ("tcpSocket", p.tcp_socket.is_some()),
        ("grpc", p.grpc.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    one_handler(&handlers, "exec, httpGet, tcpSocket or grpc", at, errors);
    if let Some(exec) = &p.exec {
        exec_command(exec, at, errors);
    }
    if let Some(get) = &p.http_get {
        http_get(get, &format!("{at}.httpGet"), port_names, errors);
    }
    if let Some(tcp) = &p.tcp_socket {
        target_port(
            &tcp.port,
            &format!("{at}.tcpSocket.port"),
            port_names,
            errors,
        );
    }
    if let Some(grpc) = &p.grpc {
        port_number(grpc.port, &format!("{at}.grpc.port"), errors);
    }
    if once && p.success_threshold.is_some_and(|n| n > 1) {
        errors.push(
            format!("{at}.successThreshold"),
            "must be 1 for liveness and startup probes",
        );
    }
    for (field, value) in [
        (
            "initialDelaySeconds",
            p.initial_delay_seconds.map(i64::from),
        ),
        ("periodSeconds", p.period_seconds.map(i64::from)),
        ("timeoutSeconds", p.timeout_seconds.map(i64::from)),
        ("successThreshold", p.success_threshold.map(i64::from)),
        ("failureThreshold", p.failure_threshold.map(i64::from)),
        (
            "terminationGracePeriodSeconds",
            p.termination_grace_period_seconds,
        ),
    ] {
        if let Some(v) = value
            && v < 0
        {
            errors.push(
                format!("{at}.{field}"),
                format!("must not be negative (got {v})"),
            );
        }
    }
}

/// A postStart or preStop handler; a sleep lasts at most `grace` seconds.
fn handler(
    h: &LifecycleHandler,
    at: &str,
    port_names: &BTreeSet<&str>,
    grace: i64,
    errors: &mut FieldErrors,
) {
    let handlers: Vec<&str> = [
        ("exec", h.exec.is_some()),
        ("httpGet", h.http_get.is_some()),
        ("tcpSocket", h.tcp_socket.is_some()),
        ("sleep", h.sleep.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    one_handler(&handlers, "exec, httpGet, tcpSocket or sleep", at, errors);
    if let Some(exec) = &h.exec {
        exec_command(exec, at, errors);
    }
    if let Some(get) = &h.http_get {
        http_get(get, &format!("{at}.httpGet"), port_names, errors);
    }
    if let Some(tcp) = &h.tcp_socket {
        target_port(
            &tcp.port,
            &format!("{at}.tcpSocket.port"),
            port_names,
            errors,
        );
    }
    if let Some(sleep) = &h.sleep
        && !(0..=grace).contains(&sleep.seconds)
    {
        errors.push(
            format!("{at}.sleep.seconds"),
            format!(
                "{} must be non-negative and at most terminationGracePeriodSeconds ({grace})",
                sleep.seconds
            ),
        );
    }
}

fn exec_command(exec: &ExecAction, at: &str, errors: &mut FieldErrors) {
    if exec.command.as_ref().is_none_or(|c| c.is_empty()) {
        errors.push(format!("{at}.exec.command"), "required");
    }
}

/// An httpGet: its port, scheme, host, path and headers (nothing that
/// would change the request line or add header lines).
fn http_get(get: &HTTPGetAction, at: &str, port_names: &BTreeSet<&str>, errors: &mut FieldErrors) {
    target_port(&get.port, &format!("{at}.port"), port_names, errors);
    if let Some(scheme) = get.scheme.as_deref()
        && !matches!(scheme, "HTTP" | "HTTPS")
    {
        errors.push(
            format!("{at}.scheme"),
            format!("unsupported value {scheme:?} (HTTP or HTTPS)"),
        );
    }
    if let Some(host) = get.host.as_deref()
        && host
            .bytes()
            .any(|b| b.is_ascii_control() || b" /?#@\\".contains(&b))
    {
        errors.push(
            format!("{at}.host"),
            format!("{host:?} is not a host name or address"),
        );
    }
    if let Some(path) = get.path.as_deref()
        && path.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        errors.push(
            format!("{at}.path"),
            format!("{path:?} holds spaces or control characters: percent-encode them"),
        );
    }
    for (i, header) in get.http_headers.iter().flatten().enumerate() {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if header.name.is_empty() || !header.name.bytes().all(token) {
            errors.push(
                format!("{at}.httpHeaders[{i}].name"),
                format!("{:?} is not an HTTP header name", header.name),
            );
        }
        if header
            .value
            .bytes()
            .any(|b| b.is_ascii_control() && b != b'\t')
        {
            errors.push(
                format!("{at}.httpHeaders[{i}].value"),
                "may not hold control characters (such as a line break)",
            );
        }
    }
}

fn one_handler(handlers: &[&str], choices: &str, at: &str, errors: &mut FieldErrors) {
    match handlers {
        [_] => {}
        [] => errors.push(
            at,
            format!("needs exactly one handler ({choices}), has none"),
        ),
        more => errors.push(
            at,
            format!(
                "needs exactly one handler ({choices}), has {}: {}",
                more.len(),
                more.join(", ")
            ),
        ),
    }
}

fn env(var: &EnvVar, at: &str, errors: &mut FieldErrors) {
    if var.name.is_empty() {
        errors.push(format!("{at}.name"), "required");
    }
    let Some(from) = &var.value_from else {
        return;
    };
    if var.value.as_deref().is_some_and(|v| !v.is_empty()) {
        errors.push(
            format!("{at}.valueFrom"),
            "may not be set together with value",
        );
    }
    let sources: Vec<&str> = [
        ("fieldRef", from.field_ref.is_some()),
        ("resourceFieldRef", from.resource_field_ref.is_some()),
        ("configMapKeyRef", from.config_map_key_ref.is_some()),
        ("secretKeyRef", from.secret_key_ref.is_some()),
        ("fileKeyRef", from.file_key_ref.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if sources.len() != 1 {
        errors.push(
            format!("{at}.valueFrom"),
            format!(
                "needs exactly one source, has {}",
                if sources.is_empty() {
                    "none".to_string()
                } else {
                    sources.join(", ")
                }
            ),
        );
    }
    if let Some(field) = &from.field_ref {
        let path = field.field_path.as_str();
        if !FIELD_PATHS.contains(&path) && label_key(path).is_none() {
            errors.push(
                format!("{at}.valueFrom.fieldRef.fieldPath"),
                format!(
                    "unsupported value {path:?} ({}, or metadata.labels['<key>'])",
                    FIELD_PATHS.join(", ")
                ),
            );
        }
        if let Some(version) = field.api_version.as_deref()
            && !version.is_empty()
            && version != "v1"
        {
            errors.push(format!("{at}.valueFrom.fieldRef.apiVersion"), "must be v1");
        }
    }
    if let Some(resource) = &from.resource_field_ref {
        if !RESOURCE_FIELDS.contains(&resource.resource.as_str()) {
            errors.push(
                format!("{at}.valueFrom.resourceFieldRef.resource"),
                format!(
                    "unsupported value {:?} ({})",
                    resource.resource,
                    RESOURCE_FIELDS.join(", ")
                ),
            );
        }
        if let Some(divisor) = &resource.divisor {
            quantity(
                divisor,
                &format!("{at}.valueFrom.resourceFieldRef.divisor"),
                errors,
            );
        }
    }
}

/// The key of a `metadata.labels['key']` field path.
fn label_key(path: &str) -> Option<&str> {
    let key = path.strip_prefix("metadata.labels['")?.strip_suffix("']")?;
    (!key.is_empty() && !key.contains('\'')).then_some(key)
}

fn requirements(r: &ResourceRequirements, at: &str, errors: &mut FieldErrors) {
    let limits = quantities(r.limits.as_ref(), &format!("{at}.limits"), errors);
    let requests = quantities(r.requests.as_ref(), &format!("{at}.requests"), errors);
    for (name, request) in &requests {
        if let Some(limit) = limits.get(name)
            && request.milli_value() > limit.milli_value()
        {
            errors.push(
                format!("{at}.requests.{name}"),
                format!("{request} must be less than or equal to the limit {limit}"),
            );
        }
    }
}

/// Parses every quantity of a resource map; returns the valid ones.
fn quantities<'m>(
    map: Option<&'m BTreeMap<String, ApiQuantity>>,
    at: &str,
    errors: &mut FieldErrors,
) -> BTreeMap<&'m str, Quantity> {
    let mut parsed = BTreeMap::new();
    for (name, value) in map.into_iter().flatten() {
        if let Some(q) = quantity(value, &format!("{at}.{name}"), errors) {
            parsed.insert(name.as_str(), q);
        }
    }
    parsed
}

fn quantity(value: &ApiQuantity, path: &str, errors: &mut FieldErrors) -> Option<Quantity> {
    match Quantity::parse(&value.0) {
        Ok(q) if q.is_negative() => {
            errors.push(path, format!("{q} must not be negative"));
            None
        }
        Ok(q) => Some(q),
        Err(e) => {
            errors.push(path, format!("invalid {e}"));
            None
        }
    }
}
