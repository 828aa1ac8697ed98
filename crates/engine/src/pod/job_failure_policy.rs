//! A Job's `podFailurePolicy`: what a failed pod does to its Job. The
//! rules are tried in order and the first that matches decides: FailJob
//! fails the Job at once, FailIndex fails the pod's index (Indexed Jobs
//! with backoffLimitPerIndex), Ignore does not count the failure toward
//! the backoff limit, Count (also when no rule matches) counts it.
//!
//! `onExitCodes` looks at the exit codes of the pod's containers and init
//! containers that ended with a non-zero code. `onPodConditions` matches
//! pod conditions such as DisruptionTarget, which no peapod pod gets (no
//! eviction or preemption here), so such rules never match.

use peapod_kube::k8s_openapi::api::batch::v1::{
    PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
};

use super::record::{ContainerState, PodRecord};

/// What the policy makes of one failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureAction {
    /// Fail the Job, with this message.
    FailJob(String),
    FailIndex,
    Ignore,
    Count,
}

/// The containers of `pod` that ended with a non-zero code, with it.
fn failed_exits(pod: &PodRecord) -> impl Iterator<Item = (&str, i32)> {
    pod.containers.iter().filter_map(|c| match c.state {
        ContainerState::Terminated { exit_code, .. } if exit_code != 0 => {
            Some((c.name.as_str(), exit_code))
        }
        _ => None,
    })
}

/// The first container of `pod` whose exit matches `req`.
fn exit_match<'p>(
    req: &PodFailurePolicyOnExitCodesRequirement,
    pod: &'p PodRecord,
) -> Option<(&'p str, i32)> {
    failed_exits(pod)
        .filter(|(name, _)| req.container_name.as_deref().is_none_or(|n| n == *name))
        .find(|(_, code)| match req.operator.as_str() {
            "In" => req.values.contains(code),
            "NotIn" => !req.values.contains(code),
            _ => false,
        })
}

/// What `policy` (none: count every failure) does with failed `pod`.
pub fn classify(policy: Option<&PodFailurePolicy>, pod: &PodRecord) -> FailureAction {
    let Some(policy) = policy else {
        return FailureAction::Count;
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        // onPodConditions: no peapod pod has such a condition.
        let Some((container, code)) = rule.on_exit_codes.as_ref().and_then(|r| exit_match(r, pod))
        else {
            continue;
        };
        return match rule.action.as_str() {
            "FailJob" => FailureAction::FailJob(format!(
                "Container {container} for pod {}/{} failed with exit code {code} matching FailJob rule at index {i}",
                pod.namespace, pod.name
            )),
            "FailIndex" => FailureAction::FailIndex,
            "Ignore" => FailureAction::Ignore,
            _ => FailureAction::Count,
        };
    }
    FailureAction::Count
}
