//! Value checks done before anything is created, each error naming its
//! field path (`spec.containers[0].resources.limits.memory`).
//!
//! This file holds the object level (metadata, workload specs, selectors);
//! `validate/pod.rs` the pod spec, `validate/job.rs` the Job spec,
//! `validate/dns.rs` the name syntax.

mod dns;
mod job;
mod pod;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

pub use dns::{is_config_key, is_dns1123_label, is_dns1123_subdomain, is_port_name};

use crate::object::Object;

/// One refused value: the field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// Every refused value of one object, shown on one line separated by "; ".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldErrors(pub Vec<FieldError>);

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl FieldErrors {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// The paths of the errors, in order (handy in tests and logs).
    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.path.as_str()).collect()
    }
}

/// Which restartPolicy values a pod spec may have, by the kind holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartRule {
    /// A bare Pod: Always (the default), OnFailure or Never.
    Pod,
    /// A Job's template: OnFailure or Never, and it must be set.
    Job,
    /// A Deployment's or ReplicaSet's template: Always only (the default).
    AlwaysOnly,
}

/// Checks every value peapod relies on; all problems are reported at once.
pub fn validate(object: &Object) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    let name_is_label = matches!(object, Object::Pod(_));
    metadata(object.metadata(), name_is_label, &mut errors);
    match object {
        Object::Pod(p) => match &p.spec {
            Some(spec) => pod::pod_spec(spec, "spec", RestartRule::Pod, &mut errors),
            None => errors.push("spec", "required"),
        },
        Object::Job(job) => match &job.spec {
            Some(spec) => job::job_spec(spec, &mut errors),
            None => errors.push("spec", "required"),
        },
        Object::Deployment(d) => {
            let spec = &d.spec;
            non_negative("spec.replicas", spec.replicas.map(i64::from), &mut errors);
            selector("Deployment", &spec.selector, &spec.template, &mut errors);
            template(&spec.template, RestartRule::AlwaysOnly, &mut errors);
        }
        Object::ReplicaSet(rs) => {
            let spec = &rs.spec;
            non_negative("spec.replicas", spec.replicas.map(i64::from), &mut errors);
            match &spec.template {
                Some(t) => {
                    selector("ReplicaSet", &spec.selector, t, &mut errors);
                    template(t, RestartRule::AlwaysOnly, &mut errors);
                }
                None => errors.push("spec.template", "required"),
            }
        }
        Object::ConfigMap(cm) => {
            let binary = cm.binary_data.iter().flat_map(|m| m.keys());
            config_keys("data", cm.data.iter().flat_map(|m| m.keys()), &mut errors);
            config_keys("binaryData", binary, &mut errors);
        }
        Object::Secret(s) => {
            config_keys("data", s.data.iter().flat_map(|m| m.keys()), &mut errors);
            let string_data = s.string_data.iter().flat_map(|m| m.keys());
            config_keys("stringData", string_data, &mut errors);
        }
    }
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn metadata(meta: &ObjectMeta, name_is_label: bool, errors: &mut FieldErrors) {
    match meta.name.as_deref() {
        None | Some("") => errors.push("metadata.name", "required"),
        Some(name) if name_is_label && !is_dns1123_label(name) => errors.push(
            "metadata.name",
            format!("{name:?} is not a DNS-1123 label ({})", dns::LABEL_RULE),
        ),
        Some(name) if !is_dns1123_subdomain(name) => errors.push(
            "metadata.name",
            format!(
                "{name:?} is not a DNS-1123 subdomain ({})",
                dns::SUBDOMAIN_RULE
            ),
        ),
        Some(_) => {}
    }
    if let Some(ns) = meta.namespace.as_deref()
        && !ns.is_empty()
        && !is_dns1123_label(ns)
    {
        errors.push(
            "metadata.namespace",
            format!("{ns:?} is not a DNS-1123 label ({})", dns::LABEL_RULE),
        );
    }
}

fn template(template: &PodTemplateSpec, rule: RestartRule, errors: &mut FieldErrors) {
    match &template.spec {
        Some(spec) => pod::pod_spec(spec, "spec.template.spec", rule, errors),
        None => errors.push("spec.template.spec", "required"),
    }
}

fn non_negative(path: &str, value: Option<i64>, errors: &mut FieldErrors) {
    if let Some(v) = value
        && v < 0
    {
        errors.push(path, format!("must not be negative (got {v})"));
    }
}

fn config_keys<'a>(field: &str, keys: impl Iterator<Item = &'a String>, errors: &mut FieldErrors) {
    for key in keys {
        if !is_config_key(key) {
            errors.push(
                format!("{field}.{key}"),
                "a key must be letters, digits, '-', '_' or '.', at most 253 characters",
            );
        }
    }
}

/// The selector must be non-empty and select the template's labels.
fn selector(
    kind: &str,
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    errors: &mut FieldErrors,
) {
    let no_labels = selector.match_labels.as_ref().is_none_or(|m| m.is_empty());
    let no_expressions = selector
        .match_expressions
        .as_ref()
        .is_none_or(|e| e.is_empty());
    if no_labels && no_expressions {
        errors.push(
            "spec.selector",
            format!("empty selector is invalid for a {kind}"),
        );
        return;
    }
    let empty = BTreeMap::new();
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .unwrap_or(&empty);
    match selects(selector, labels) {
        Ok(true) => {}
        Ok(false) => errors.push(
            "spec.template.metadata.labels",
            "selector does not match template labels",
        ),
        Err((path, message)) => errors.push(path, message),
    }
}

/// Whether `selector` selects a pod with `labels`; an error for an unknown
/// operator or values that do not fit it.
pub fn selects(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, (String, String)> {
    let mut matched = true;
    for (key, value) in selector.match_labels.iter().flatten() {
        matched &= labels.get(key) == Some(value);
    }
    for (i, requirement) in selector.match_expressions.iter().flatten().enumerate() {
        let path = format!("spec.selector.matchExpressions[{i}]");
        let values = requirement.values.as_deref().unwrap_or_default();
        let label = labels.get(&requirement.key);
        if !matches!(
            requirement.operator.as_str(),
            "In" | "NotIn" | "Exists" | "DoesNotExist"
        ) {
            return Err((
                format!("{path}.operator"),
                format!(
                    "unknown operator {:?} (In, NotIn, Exists or DoesNotExist)",
                    requirement.operator
                ),
            ));
        }
        let needs_values = matches!(requirement.operator.as_str(), "In" | "NotIn");
        if needs_values == values.is_empty() {
            let message = if needs_values {
                "values must be non-empty for In and NotIn"
            } else {
                "values must be empty for Exists and DoesNotExist"
            };
            return Err((format!("{path}.values"), message.to_string()));
        }
        matched &= match requirement.operator.as_str() {
            "In" => label.is_some_and(|l| values.contains(l)),
            "NotIn" => label.is_none_or(|l| !values.contains(l)),
            "Exists" => label.is_some(),
            // DoesNotExist, the only operator left.
            _ => label.is_none(),
        };
    }
    Ok(matched)
}

#[cfg(test)]
mod tests;
