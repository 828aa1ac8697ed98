//! Indexed Jobs (`completionMode: Indexed`): each pod does one completion
//! index, 0 to completions - 1, shown as the pod's annotation and label
//! `batch.kubernetes.io/job-completion-index`, its env
//! `JOB_COMPLETION_INDEX` and its host name `<job>-<index>`; the Job is
//! done when every index has a succeeded pod.

use std::collections::BTreeSet;

use peapod_kube::k8s_openapi::api::core::v1::{EnvVar, PodSpec};

use super::record::PodRecord;

/// The annotation and label holding a pod's completion index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// The annotation holding how often the pod's index failed before it.
pub const FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-failure-count";
/// The env variable holding the index in every container.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// The completion index of a pod of an Indexed Job.
pub fn pod_index(p: &PodRecord) -> Option<u32> {
    p.plan.labels.get(INDEX_KEY)?.parse().ok()
}

/// The spec of the pod for `index` of Job `job`: `JOB_COMPLETION_INDEX`
/// in every container (unless it sets it itself) and, when the template
/// names no host, the host name `<job>-<index>` (cut to 63 characters).
pub fn index_pod_spec(spec: &mut PodSpec, job: &str, index: u32) {
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        let env = c.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|v| v.name == INDEX_ENV) {
            env.push(EnvVar {
                name: INDEX_ENV.into(),
                value: Some(index.to_string()),
                value_from: None,
            });
        }
    }
    if spec.hostname.as_deref().is_none_or(str::is_empty) {
        let suffix = format!("-{index}");
        let keep = peapod_kube::names::MAX_NAME_LENGTH - suffix.len();
        let base: String = job.chars().take(keep).collect();
        spec.hostname = Some(format!("{}{suffix}", base.trim_end_matches(['-', '.'])));
    }
}

/// Indexes as Kubernetes writes them: increasing, comma-separated, three
/// or more in a row as `first-last` ("1,3-5,7").
pub fn format_indexes(indexes: &BTreeSet<u32>) -> String {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for &i in indexes {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => runs.push((i, i)),
        }
    }
    runs.iter()
        .map(|&(first, last)| match last - first {
            0 => first.to_string(),
            1 => format!("{first},{last}"),
            _ => format!("{first}-{last}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use peapod_kube::k8s_openapi::api::core::v1::Container;

    #[test]
    fn indexes_are_written_as_kubernetes_does() {
        let set = |v: &[u32]| v.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(format_indexes(&set(&[])), "");
        assert_eq!(format_indexes(&set(&[0])), "0");
        assert_eq!(format_indexes(&set(&[0, 1])), "0,1");
        assert_eq!(format_indexes(&set(&[0, 1, 2, 4])), "0-2,4");
        assert_eq!(format_indexes(&set(&[1, 3, 4, 5, 7])), "1,3-5,7");
    }

    #[test]
    fn every_container_gets_the_index_and_the_pod_a_host_name() {
        let mut spec = PodSpec {
            containers: vec![Container {
                name: "a".into(),
                ..Default::default()
            }],
            init_containers: Some(vec![Container {
                name: "b".into(),
                env: Some(vec![EnvVar {
                    name: INDEX_ENV.into(),
                    value: Some("mine".into()),
                    value_from: None,
                }]),
                ..Default::default()
            }]),
            ..Default::default()
        };
        index_pod_spec(&mut spec, "work", 3);
        let env = |c: &Container| {
            c.env
                .iter()
                .flatten()
                .filter(|v| v.name == INDEX_ENV)
                .map(|v| v.value.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(env(&spec.containers[0]), ["3"]);
        assert_eq!(env(&spec.init_containers.as_ref().unwrap()[0]), ["mine"]);
        assert_eq!(spec.hostname.as_deref(), Some("work-3"));
        let mut long = PodSpec::default();
        index_pod_spec(&mut long, &"j".repeat(70), 12);
        assert_eq!(long.hostname.as_deref().map(str::len), Some(63));
    }
}
