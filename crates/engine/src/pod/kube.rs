//! Kubernetes pod specs into pod plans: each container's command, env,
//! security context, resources and volume mounts as a container request;
//! the pod's restart policy, host ports, namespaces, QoS class and limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use peapod_kube::k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSecurityContext, PodSpec, Probe as K8sProbe, ResourceRequirements,
    SecurityContext,
};
use peapod_kube::k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use peapod_kube::quantity::{Quantity, to_bytes, to_millicpu};

use super::kube_probe;
use super::probe::Action;
use super::{ContainerKind, POD_IP, PodContainer, PodPlan, PodRestart};
use crate::containers::EngineError;
use crate::request::{
    ContainerRequest, DnsBase, DnsConfig, PortMapping, Protocol, Resources, SeccompMode,
    SecurityOpts, VolumeSource, VolumeSpec,
};

/// Everything about the pod that is not in its spec.
pub struct PodMeta<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub labels: BTreeMap<String, String>,
    /// Where its emptyDir, configMap and secret volumes are made.
    pub volumes_dir: &'a Path,
    /// ConfigMaps and Secrets of the same apply, by name: key → bytes.
    pub config: &'a BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Restart limit (a Job's backoffLimit).
    pub max_restarts: Option<u32>,
}

fn bad(path: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("{path}: {why}"))
}

fn quantity(path: &str, q: &K8sQuantity) -> Result<Quantity, EngineError> {
    Quantity::parse(&q.0).map_err(|e| bad(path, e))
}

/// A container's memory limit (bytes), CPU limit and CPU request
/// (millicores).
type Limits = (Option<u64>, Option<u64>, Option<u64>);

/// The limits of `r`.
fn limits(path: &str, r: Option<&ResourceRequirements>) -> Result<Limits, EngineError> {
    let Some(r) = r else {
        return Ok((None, None, None));
    };
    let get = |map: &Option<BTreeMap<String, K8sQuantity>>, key: &str, what: &str| {
        map.as_ref()
            .and_then(|m| m.get(key))
            .map(|q| quantity(&format!("{path}.{what}.{key}"), q))
            .transpose()
    };
    let mem = get(&r.limits, "memory", "limits")?.map(|q| to_bytes(&q));
    let cpu = get(&r.limits, "cpu", "limits")?.map(|q| to_millicpu(&q));
    let cpu_req = get(&r.requests, "cpu", "requests")?
        .map(|q| to_millicpu(&q))
        .or(cpu);
    Ok((mem, cpu, cpu_req))
}

fn env(path: &str, vars: &[EnvVar], meta: &PodMeta) -> Result<Vec<String>, EngineError> {
    let mut out = Vec::new();
    for (i, v) in vars.iter().enumerate() {
        let value = match (&v.value, &v.value_from) {
            (_, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    match f.field_path.as_str() {
                        "metadata.name" => meta.name.to_string(),
                        "metadata.namespace" => meta.namespace.to_string(),
                        "metadata.uid" => meta.uid.to_string(),
                        "status.podIP" => POD_IP.to_string(),
                        "spec.nodeName" | "status.hostIP" => nix::unistd::gethostname()
                            .ok()
                            .and_then(|h| h.into_string().ok())
                            .unwrap_or_default(),
                        p => {
                            return Err(bad(
                                &format!("{path}.env[{i}].valueFrom.fieldRef.fieldPath"),
                                format!(
                                    "{p:?} is not supported: use metadata.name, metadata.namespace, metadata.uid or status.podIP"
                                ),
                            ));
                        }
                    }
                } else if let Some(r) = from
                    .config_map_key_ref
                    .as_ref()
                    .map(|r| (&r.name, &r.key))
                    .or(from.secret_key_ref.as_ref().map(|r| (&r.name, &r.key)))
                {
                    let data = meta
                        .config
                        .get(r.0)
                        .and_then(|m| m.get(r.1))
                        .ok_or_else(|| {
                            bad(
                                &format!("{path}.env[{i}].valueFrom"),
                                format!(
                                    "no ConfigMap or Secret {:?} with key {:?} in this apply",
                                    r.0, r.1
                                ),
                            )
                        })?;
                    String::from_utf8_lossy(data).into_owned()
                } else {
                    return Err(bad(
                        &format!("{path}.env[{i}].valueFrom"),
                        "needs fieldRef, configMapKeyRef or secretKeyRef",
                    ));
                }
            }
            (Some(v), None) => v.clone(),
            (None, None) => String::new(),
        };
        out.push(format!("{}={value}", v.name));
    }
    Ok(out)
}

fn user(sc: Option<&SecurityContext>, pod: Option<&PodSecurityContext>) -> Option<String> {
    let uid = sc
        .and_then(|s| s.run_as_user)
        .or(pod.and_then(|p| p.run_as_user));
    let gid = sc
        .and_then(|s| s.run_as_group)
        .or(pod.and_then(|p| p.run_as_group));
    match (uid, gid) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => Some(format!("0:{g}")),
        (None, None) => None,
    }
}

/// The request for container `c` of the pod.
fn container(
    path: &str,
    c: &Container,
    spec: &PodSpec,
    meta: &PodMeta,
    volumes: &BTreeMap<String, VolumeSource>,
    read_only_volumes: &BTreeMap<String, bool>,
) -> Result<ContainerRequest, EngineError> {
    let image = c
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| bad(&format!("{path}.image"), "a container needs an image"))?;
    let (memory, cpu_limit, cpu_req) = limits(&format!("{path}.resources"), c.resources.as_ref())?;
    let sc = c.security_context.as_ref();
    let psc = spec.security_context.as_ref();
    if sc
        .and_then(|s| s.run_as_non_root)
        .or(psc.and_then(|p| p.run_as_non_root))
        == Some(true)
        && user(sc, psc).is_none_or(|u| u.starts_with("0:") || u == "0")
    {
        return Err(bad(
            &format!("{path}.securityContext.runAsNonRoot"),
            "is true but no non-zero runAsUser is set: set runAsUser",
        ));
    }
    let mut vols = Vec::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let source = volumes.get(&m.name).ok_or_else(|| {
            bad(
                &format!("{path}.volumeMounts[{i}].name"),
                format!("no volume named {:?} in spec.volumes", m.name),
            )
        })?;
        let source = match (source, m.sub_path.as_deref().filter(|s| !s.is_empty())) {
            (VolumeSource::Bind(dir), Some(sub)) => {
                if sub.split('/').any(|p| p == "..") || sub.starts_with('/') {
                    return Err(bad(
                        &format!("{path}.volumeMounts[{i}].subPath"),
                        "must be a relative path without ..",
                    ));
                }
                let p = dir.join(sub);
                if !p.exists() {
                    std::fs::create_dir_all(&p)
                        .map_err(crate::containers::io("volume subPath", &p))?;
                }
                VolumeSource::Bind(p)
            }
            (s, _) => s.clone(),
        };
        vols.push(VolumeSpec {
            source,
            target: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false)
                || read_only_volumes.get(&m.name).copied().unwrap_or(false),
        });
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let seccomp = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or(psc.and_then(|p| p.seccomp_profile.as_ref()));
    let seccomp = match seccomp.map(|p| (p.type_.as_str(), p.localhost_profile.as_deref())) {
        None | Some(("RuntimeDefault", _)) => SeccompMode::Default,
        Some(("Unconfined", _)) => SeccompMode::Unconfined,
        Some(("Localhost", Some(file))) => SeccompMode::File(PathBuf::from(file)),
        Some((t, _)) => {
            return Err(bad(
                &format!("{path}.securityContext.seccompProfile.type"),
                format!("{t:?}: use RuntimeDefault, Unconfined or Localhost with localhostProfile"),
            ));
        }
    };
    Ok(ContainerRequest {
        image,
        entrypoint: c.command.clone(),
        command: c.args.clone().unwrap_or_default(),
        env: env(path, c.env.as_deref().unwrap_or_default(), meta)?,
        workdir: c.working_dir.clone(),
        user: user(sc, psc),
        tty: c.tty.unwrap_or(false),
        interactive: c.stdin.unwrap_or(false),
        volumes: vols,
        read_only: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        resources: Resources {
            memory,
            memory_swap: memory.map(|m| m as i64),
            nano_cpus: cpu_limit.map(|m| m * 1_000_000),
            cpu_shares: cpu_req.map(peapod_kube::qos::cpu_shares),
            ..Default::default()
        },
        cap_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        cap_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        security: SecurityOpts {
            no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
            seccomp,
        },
        labels: meta.labels.clone(),
        extra_hosts: host_aliases(spec)?,
        dns: dns(spec)?,
        group_add: psc
            .map(|p| {
                p.supplemental_groups
                    .iter()
                    .flatten()
                    .chain(p.fs_group.as_ref())
                    .filter_map(|&g| u32::try_from(g).ok())
                    .collect()
            })
            .unwrap_or_default(),
        sysctls: psc
            .and_then(|p| p.sysctls.as_ref())
            .map(|s| {
                s.iter()
                    .map(|s| (s.name.clone(), s.value.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    })
}

/// `spec.hostAliases` as /etc/hosts entries.
fn host_aliases(spec: &PodSpec) -> Result<Vec<(String, std::net::IpAddr)>, EngineError> {
    let mut out = Vec::new();
    for (i, a) in spec.host_aliases.iter().flatten().enumerate() {
        let ip = a.ip.parse().map_err(|_| {
            bad(
                &format!("spec.hostAliases[{i}].ip"),
                format!("{:?} is not an IP address", a.ip),
            )
        })?;
        for h in a.hostnames.iter().flatten() {
            out.push((h.clone(), ip));
        }
    }
    Ok(out)
}

/// `spec.dnsPolicy` and `spec.dnsConfig` (ClusterFirst has no cluster DNS
/// here: it is the host's, as Default).
fn dns(spec: &PodSpec) -> Result<Option<DnsConfig>, EngineError> {
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let base = match policy {
        "None" => DnsBase::None,
        "ClusterFirst" | "ClusterFirstWithHostNet" | "Default" => DnsBase::Append,
        p => {
            return Err(bad(
                "spec.dnsPolicy",
                format!("{p:?}: use ClusterFirst, ClusterFirstWithHostNet, Default or None"),
            ));
        }
    };
    let Some(c) = &spec.dns_config else {
        if base == DnsBase::None {
            return Err(bad("spec.dnsConfig", "is required with dnsPolicy: None"));
        }
        return Ok(None);
    };
    let mut nameservers = Vec::new();
    for (i, n) in c.nameservers.iter().flatten().enumerate() {
        nameservers.push(n.parse().map_err(|_| {
            bad(
                &format!("spec.dnsConfig.nameservers[{i}]"),
                format!("{n:?} is not an IP address"),
            )
        })?);
    }
    Ok(Some(DnsConfig {
        nameservers,
        searches: c.searches.clone().unwrap_or_default(),
        options: c
            .options
            .iter()
            .flatten()
            .filter_map(|o| {
                let name = o.name.clone()?;
                Some(match &o.value {
                    Some(v) => format!("{name}:{v}"),
                    None => name,
                })
            })
            .collect(),
        base,
    }))
}

/// The plan of pod `meta` with `spec`.
pub fn plan(meta: &PodMeta, spec: &PodSpec, default_restart: &str) -> Result<PodPlan, EngineError> {
    let restart = match spec.restart_policy.as_deref().unwrap_or(default_restart) {
        "Always" => PodRestart::Always,
        "OnFailure" => PodRestart::OnFailure,
        "Never" => PodRestart::Never,
        p => {
            return Err(bad(
                "spec.restartPolicy",
                format!("{p:?}: use Always, OnFailure or Never"),
            ));
        }
    };
    // Volumes: a directory per volume under the pod's volumes dir (emptyDir,
    // configMap, secret), or a host path.
    let mut volumes = BTreeMap::new();
    let mut read_only = BTreeMap::new();
    let mut memory_volumes = Vec::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let vpath = format!("spec.volumes[{i}]");
        let dir = meta.volumes_dir.join(&v.name);
        let source = if let Some(e) = &v.empty_dir {
            std::fs::create_dir_all(&dir).map_err(crate::containers::io("emptyDir", &dir))?;
            if e.medium.as_deref() == Some("Memory") {
                let size = e
                    .size_limit
                    .as_ref()
                    .map(|q| {
                        quantity(&format!("{vpath}.emptyDir.sizeLimit"), q).map(|q| to_bytes(&q))
                    })
                    .transpose()?;
                memory_volumes.push((dir.clone(), size));
            }
            VolumeSource::Bind(dir)
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            let kind = h.type_.as_deref().unwrap_or("");
            let ok = match kind {
                "" => true,
                "DirectoryOrCreate" => std::fs::create_dir_all(&p).is_ok(),
                "Directory" => p.is_dir(),
                "FileOrCreate" => p.is_file() || std::fs::File::create(&p).is_ok(),
                "File" => p.is_file(),
                "Socket" => std::fs::metadata(&p).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_socket()
                }),
                "CharDevice" | "BlockDevice" => std::fs::metadata(&p).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    if kind == "CharDevice" {
                        m.file_type().is_char_device()
                    } else {
                        m.file_type().is_block_device()
                    }
                }),
                other => {
                    return Err(bad(
                        &format!("{vpath}.hostPath.type"),
                        format!("unknown type {other:?}"),
                    ));
                }
            };
            if !ok {
                return Err(bad(
                    &format!("{vpath}.hostPath"),
                    format!("{} is not a {kind} on this host", h.path),
                ));
            }
            VolumeSource::Bind(p)
        } else if let Some(name) = v
            .config_map
            .as_ref()
            .map(|c| c.name.clone())
            .or(v.secret.as_ref().and_then(|s| s.secret_name.clone()))
        {
            let data = meta.config.get(&name).ok_or_else(|| {
                bad(
                    &vpath,
                    format!(
                        "no ConfigMap or Secret {name:?} in this apply: apply it in the same file"
                    ),
                )
            })?;
            std::fs::create_dir_all(&dir).map_err(crate::containers::io("volume", &dir))?;
            for (k, bytes) in data {
                if k.contains('/') || k == ".." {
                    return Err(bad(&vpath, format!("bad key {k:?}")));
                }
                let f = dir.join(k);
                std::fs::write(&f, bytes).map_err(crate::containers::io("volume file", &f))?;
            }
            read_only.insert(v.name.clone(), true);
            VolumeSource::Bind(dir)
        } else {
            return Err(bad(
                &vpath,
                "unsupported volume source: use emptyDir, hostPath, configMap or secret",
            ));
        };
        volumes.insert(v.name.clone(), source);
    }
    let mut containers = Vec::new();
    let mut ports = Vec::new();
    let mut memory_sum = Some(0u64);
    let mut cpu_sum = Some(0u64);
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let path = format!("spec.initContainers[{i}]");
        let request = container(&path, c, spec, meta, &volumes, &read_only)?;
        let kind = if c.restart_policy.as_deref() == Some("Always") {
            ContainerKind::Sidecar
        } else {
            ContainerKind::Init
        };
        containers.push(pod_container(&path, c, kind, request)?);
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let path = format!("spec.containers[{i}]");
        let request = container(&path, c, spec, meta, &volumes, &read_only)?;
        memory_sum = memory_sum.zip(request.resources.memory).map(|(a, b)| a + b);
        cpu_sum = cpu_sum
            .zip(request.resources.nano_cpus)
            .map(|(a, b)| a + b / 1_000_000);
        for (j, p) in c.ports.iter().flatten().enumerate() {
            if let Some(hp) = p.host_port {
                let port = |v: i32, what: &str| {
                    u16::try_from(v).ok().filter(|&v| v > 0).ok_or_else(|| {
                        bad(
                            &format!("{path}.ports[{j}].{what}"),
                            format!("{v} is not a port (1-65535)"),
                        )
                    })
                };
                ports.push(PortMapping {
                    host_ip: p.host_ip.as_deref().and_then(|h| h.parse().ok()),
                    host_port: port(hp, "hostPort")?,
                    container_port: port(p.container_port, "containerPort")?,
                    protocol: match p.protocol.as_deref() {
                        Some("UDP") => Protocol::Udp,
                        _ => Protocol::Tcp,
                    },
                });
            }
        }
        containers.push(pod_container(&path, c, ContainerKind::App, request)?);
    }
    let mut seen = std::collections::HashSet::new();
    for c in &containers {
        if !seen.insert(c.name.clone()) {
            return Err(bad(
                "spec.containers",
                format!("two containers are named {:?}", c.name),
            ));
        }
    }
    Ok(PodPlan {
        name: meta.name.to_string(),
        namespace: meta.namespace.to_string(),
        hostname: spec
            .hostname
            .clone()
            .unwrap_or_else(|| meta.name.to_string()),
        labels: meta.labels.clone(),
        restart,
        containers,
        ports,
        host_network: spec.host_network.unwrap_or(false),
        host_ipc: spec.host_ipc.unwrap_or(false),
        host_pid: spec.host_pid.unwrap_or(false),
        share_pid: spec.share_process_namespace.unwrap_or(false),
        grace_period: spec
            .termination_grace_period_seconds
            .map(|g| g.clamp(0, u32::MAX as i64) as u32)
            .unwrap_or(30),
        max_restarts: meta.max_restarts,
        memory_limit: memory_sum.filter(|&m| m > 0),
        cpu_limit_millis: cpu_sum.filter(|&c| c > 0),
        qos: peapod_kube::qos::qos_class(spec).as_str().to_string(),
        memory_volumes,
        keep_running: false,
        private_users: spec.host_users == Some(false),
    })
}

fn pod_container(
    path: &str,
    c: &Container,
    kind: ContainerKind,
    request: ContainerRequest,
) -> Result<PodContainer, EngineError> {
    let lifecycle = c.lifecycle.as_ref();
    // A handler's exec command runs in the container; the other kinds are
    // network checks or a sleep.
    let hook = |what: &str| -> Result<(Option<Vec<String>>, Option<Action>), EngineError> {
        let h = lifecycle.and_then(|l| match what {
            "postStart" => l.post_start.as_ref(),
            _ => l.pre_stop.as_ref(),
        });
        let Some(h) = h else {
            return Ok((None, None));
        };
        Ok(
            match kube_probe::handler(&format!("{path}.lifecycle.{what}"), c, h)? {
                Action::Exec(cmd) => (Some(cmd), None),
                a => (None, Some(a)),
            },
        )
    };
    let (post_start, post_start_net) = hook("postStart")?;
    let (pre_stop, pre_stop_net) = hook("preStop")?;
    let probe_of = |p: Option<&K8sProbe>, what: &str| {
        p.map(|p| kube_probe::probe(&format!("{path}.{what}"), c, p))
            .transpose()
    };
    Ok(PodContainer {
        name: c.name.clone(),
        kind,
        request,
        pre_stop,
        post_start,
        post_start_net,
        pre_stop_net,
        liveness: probe_of(c.liveness_probe.as_ref(), "livenessProbe")?,
        readiness: probe_of(c.readiness_probe.as_ref(), "readinessProbe")?,
        startup: probe_of(c.startup_probe.as_ref(), "startupProbe")?,
    })
}
