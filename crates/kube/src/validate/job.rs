//! Job spec checks: counts, completionMode, backoffLimitPerIndex and
//! podFailurePolicy, with Kubernetes' rules.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{JobSpec, PodFailurePolicy, PodFailurePolicyRule};

use super::{FieldErrors, RestartRule, non_negative, template};

/// The podFailurePolicy actions.
const ACTIONS: [&str; 4] = ["FailJob", "FailIndex", "Ignore", "Count"];

/// Checks a Job's `spec`.
pub(crate) fn job_spec(spec: &JobSpec, errors: &mut FieldErrors) {
    for (field, value) in [
        ("parallelism", spec.parallelism),
        ("completions", spec.completions),
        ("backoffLimit", spec.backoff_limit),
        ("backoffLimitPerIndex", spec.backoff_limit_per_index),
        ("maxFailedIndexes", spec.max_failed_indexes),
    ] {
        non_negative(&format!("spec.{field}"), value.map(i64::from), errors);
    }
    if spec.active_deadline_seconds.is_some_and(|s| s <= 0) {
        errors.push("spec.activeDeadlineSeconds", "must be greater than 0");
    }
    let indexed = match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => false,
        Some("Indexed") => true,
        Some(other) => {
            errors.push(
                "spec.completionMode",
                format!("unsupported value {other:?} (NonIndexed or Indexed)"),
            );
            false
        }
    };
    if indexed && spec.completions.is_none() {
        errors.push(
            "spec.completions",
            "required when completionMode is Indexed (the number of indexes)",
        );
    }
    if spec.backoff_limit_per_index.is_some() && !indexed {
        errors.push(
            "spec.backoffLimitPerIndex",
            "requires completionMode: Indexed",
        );
    }
    if let Some(max) = spec.max_failed_indexes {
        if spec.backoff_limit_per_index.is_none() {
            errors.push(
                "spec.maxFailedIndexes",
                "requires spec.backoffLimitPerIndex",
            );
        } else if spec.completions.is_some_and(|c| max > c) {
            errors.push(
                "spec.maxFailedIndexes",
                "must be less than or equal to spec.completions",
            );
        }
    }
    template(&spec.template, RestartRule::Job, errors);
    if let Some(policy) = &spec.pod_failure_policy {
        let restart = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref());
        if let Some(r) = restart.filter(|r| *r != "Never") {
            errors.push(
                "spec.template.spec.restartPolicy",
                format!("{r:?}: only \"Never\" is supported when podFailurePolicy is specified"),
            );
        }
        pod_failure_policy(policy, spec, errors);
    }
}

fn pod_failure_policy(policy: &PodFailurePolicy, spec: &JobSpec, errors: &mut FieldErrors) {
    let containers: BTreeSet<&str> = spec
        .template
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .map(|c| c.name.as_str())
        .collect();
    if policy.rules.len() > 20 {
        errors.push("spec.podFailurePolicy.rules", "at most 20 rules");
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        let at = format!("spec.podFailurePolicy.rules[{i}]");
        pod_failure_rule(rule, &at, spec, &containers, errors);
    }
}

fn pod_failure_rule(
    rule: &PodFailurePolicyRule,
    at: &str,
    spec: &JobSpec,
    containers: &BTreeSet<&str>,
    errors: &mut FieldErrors,
) {
    if !ACTIONS.contains(&rule.action.as_str()) {
        errors.push(
            format!("{at}.action"),
            format!(
                "unsupported value {:?} (FailJob, FailIndex, Ignore or Count)",
                rule.action
            ),
        );
    }
    if rule.action == "FailIndex" && spec.backoff_limit_per_index.is_none() {
        errors.push(
            format!("{at}.action"),
            "FailIndex requires spec.backoffLimitPerIndex",
        );
    }
    let conditions = rule.on_pod_conditions.as_deref().unwrap_or_default();
    match (&rule.on_exit_codes, conditions.is_empty()) {
        (None, true) => errors.push(
            at.to_string(),
            "specify one of onExitCodes and onPodConditions",
        ),
        (Some(_), false) => errors.push(
            at.to_string(),
            "specify onExitCodes or onPodConditions, not both",
        ),
        _ => {}
    }
    if let Some(codes) = &rule.on_exit_codes {
        let at = format!("{at}.onExitCodes");
        if let Some(name) = codes.container_name.as_deref()
            && !containers.contains(name)
        {
            errors.push(
                format!("{at}.containerName"),
                format!("{name:?} is not one of the template's containers or initContainers"),
            );
        }
        if !matches!(codes.operator.as_str(), "In" | "NotIn") {
            errors.push(
                format!("{at}.operator"),
                format!("unsupported value {:?} (In or NotIn)", codes.operator),
            );
        }
        let unique: BTreeSet<i32> = codes.values.iter().copied().collect();
        if codes.values.is_empty() {
            errors.push(format!("{at}.values"), "at least one value is required");
        } else if codes.values.len() > 255 {
            errors.push(format!("{at}.values"), "at most 255 values");
        } else if unique.len() != codes.values.len() {
            errors.push(format!("{at}.values"), "values must be unique");
        }
        if codes.operator == "In" && unique.contains(&0) {
            errors.push(
                format!("{at}.values"),
                "0 cannot be used with the In operator (a container that exits 0 did not fail)",
            );
        }
    }
    for (j, c) in conditions.iter().enumerate() {
        let at = format!("{at}.onPodConditions[{j}]");
        if c.type_.is_empty() {
            errors.push(format!("{at}.type"), "required (e.g. DisruptionTarget)");
        }
        if let Some(s) = c.status.as_deref()
            && !matches!(s, "True" | "False" | "Unknown")
        {
            errors.push(
                format!("{at}.status"),
                format!("unsupported value {s:?} (True, False or Unknown)"),
            );
        }
    }
}
