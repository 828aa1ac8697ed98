//! Quality-of-service classes and cpu cgroup numbers, computed the way
//! kubelet does.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

use crate::quantity::Quantity;

/// The cgroup v1 cpu.shares floor and ceiling kubelet uses.
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
/// The CFS period kubelet uses, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota kubelet sets, in microseconds.
pub const MIN_QUOTA_US: u64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The name Kubernetes shows in `status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// Only cpu and memory decide the class.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// The pod's QoS class. Requests left unset default to the limits, as the
/// API server's defaulting does before kubelet sees a pod. Pod-level
/// `spec.resources`, when set, decide alone (kubelet's PodLevelResources).
///
/// Guaranteed: cpu and memory limits everywhere and requests equal to the
/// limits; BestEffort: no cpu or memory requests or limits at all;
/// Burstable: anything else.
pub fn qos_class(spec: &PodSpec) -> QosClass {
    // Sums in millis of every non-zero cpu/memory request and limit.
    let mut requests: BTreeMap<&str, u128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, u128> = BTreeMap::new();
    let mut guaranteed = true;
    let pod_level = spec
        .resources
        .as_ref()
        .filter(|r| has_qos_resource(r.requests.as_ref()) || has_qos_resource(r.limits.as_ref()));
    let sets: Vec<&ResourceRequirements> = match pod_level {
        Some(resources) => vec![resources],
        None => spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .filter_map(|c| c.resources.as_ref())
            .collect(),
    };
    let containers = if pod_level.is_some() {
        1
    } else {
        spec.containers.len() + spec.init_containers.as_ref().map_or(0, Vec::len)
    };
    if sets.len() < containers {
        // A container without resources has no limits.
        guaranteed = false;
    }
    for resources in sets {
        let limit = positive(resources.limits.as_ref());
        let mut request = positive(resources.requests.as_ref());
        for (name, value) in &limit {
            // Defaulting: an unset request is the limit.
            let requested = resources
                .requests
                .as_ref()
                .is_some_and(|r| r.contains_key(*name));
            if !requested {
                request.insert(name, *value);
            }
        }
        for (name, value) in request {
            *requests.entry(name).or_default() += value;
        }
        let found: BTreeSet<&str> = limit.keys().copied().collect();
        if !QOS_RESOURCES.iter().all(|r| found.contains(r)) {
            guaranteed = false;
        }
        for (name, value) in limit {
            *limits.entry(name).or_default() += value;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed
        && requests
            .iter()
            .any(|(name, req)| limits.get(name) != Some(req))
    {
        guaranteed = false;
    }
    if guaranteed && requests.len() == limits.len() {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

fn has_qos_resource(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> bool {
    !positive(map).is_empty()
}

/// The cpu and memory entries of a resource map that are above zero, in
/// millis. Unparsable quantities (refused by validation) count as zero.
fn positive(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> BTreeMap<&'static str, u128> {
    let mut out = BTreeMap::new();
    for name in QOS_RESOURCES {
        let millis = map
            .and_then(|m| m.get(name))
            .and_then(|q| Quantity::parse(&q.0).ok())
            .map_or(0, |q| u128::from(q.milli_value()));
        if millis > 0 {
            out.insert(name, millis);
        }
    }
    out
}

/// cpu.shares for a cpu request: millicpu * 1024 / 1000, at least 2 (also
/// for no request) and at most 262144.
pub fn cpu_shares(request_millicpu: u64) -> u64 {
    let shares = request_millicpu.saturating_mul(1024) / 1000;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// The CFS quota in microseconds per `period_us` for a cpu limit: None for
/// no limit (0), else millicpu * period / 1000, at least 1000.
pub fn cpu_quota(limit_millicpu: u64, period_us: u64) -> Option<u64> {
    if limit_millicpu == 0 {
        return None;
    }
    let quota = limit_millicpu.saturating_mul(period_us) / 1000;
    Some(quota.max(MIN_QUOTA_US))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Container;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    fn container(limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
        let map = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Q(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: map(limits),
                requests: map(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn spec(containers: Vec<Container>, init: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            init_containers: (!init.is_empty()).then_some(init),
            ..Default::default()
        }
    }

    #[test]
    fn best_effort() {
        assert_eq!(
            qos_class(&spec(vec![Container::default()], vec![])),
            QosClass::BestEffort
        );
        // Zero values and other resources do not count.
        let c = container(
            &[("cpu", "0"), ("ephemeral-storage", "1Gi")],
            &[("memory", "0")],
        );
        assert_eq!(qos_class(&spec(vec![c], vec![])), QosClass::BestEffort);
    }

    #[test]
    fn guaranteed() {
        let full = || container(&[("cpu", "500m"), ("memory", "64Mi")], &[]);
        assert_eq!(
            qos_class(&spec(vec![full(), full()], vec![full()])),
            QosClass::Guaranteed
        );
        let equal = container(
            &[("cpu", "1"), ("memory", "1Gi")],
            &[("cpu", "1000m"), ("memory", "1024Mi")],
        );
        assert_eq!(qos_class(&spec(vec![equal], vec![])), QosClass::Guaranteed);
    }

    #[test]
    fn burstable() {
        let full = || container(&[("cpu", "500m"), ("memory", "64Mi")], &[]);
        let lower = container(&[("cpu", "500m"), ("memory", "64Mi")], &[("cpu", "100m")]);
        assert_eq!(qos_class(&spec(vec![lower], vec![])), QosClass::Burstable);
        let memory_only = container(&[("memory", "64Mi")], &[]);
        assert_eq!(
            qos_class(&spec(vec![full(), memory_only], vec![])),
            QosClass::Burstable
        );
        // An init container without limits spoils Guaranteed.
        assert_eq!(
            qos_class(&spec(vec![full()], vec![Container::default()])),
            QosClass::Burstable
        );
        let request_only = container(&[], &[("cpu", "100m")]);
        assert_eq!(
            qos_class(&spec(vec![request_only], vec![])),
            QosClass::Burstable
        );
    }

    #[test]
    fn pod_level_resources_decide_alone() {
        let mut s = spec(vec![Container::default()], vec![]);
        s.resources = container(&[("cpu", "1"), ("memory", "1Gi")], &[]).resources;
        assert_eq!(qos_class(&s), QosClass::Guaranteed);
    }

    #[test]
    fn shares_and_quota() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(100), 102);
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_shares(10_000_000), MAX_SHARES);
        assert_eq!(cpu_quota(0, CPU_PERIOD_US), None);
        assert_eq!(cpu_quota(500, CPU_PERIOD_US), Some(50_000));
        assert_eq!(cpu_quota(2000, CPU_PERIOD_US), Some(200_000));
        assert_eq!(cpu_quota(5, CPU_PERIOD_US), Some(MIN_QUOTA_US));
    }
}
