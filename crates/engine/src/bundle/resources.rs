//! `linux.resources`: memory and swap, CPU, pids, and the device rule.

use serde_json::{Map, Value, json};

use super::BundleError;
use crate::request::ContainerRequest;

/// The CFS period peapod uses for `--cpus` (Docker's).
pub const CPU_PERIOD: u64 = 100_000;

pub fn resources(req: &ContainerRequest) -> Result<Value, BundleError> {
    let r = &req.resources;
    let mut out = Map::new();
    // Devices: deny all, the runtime allows its default devices; privileged
    // containers may use every device (host devices are not mounted in).
    out.insert(
        "devices".into(),
        json!([{"allow": req.privileged, "access": "rwm"}]),
    );
    let mut memory = Map::new();
    if let Some(m) = r.memory {
        let limit = i64::try_from(m)
            .map_err(|_| BundleError::flag("--memory", &m.to_string(), "too large"))?;
        memory.insert("limit".into(), json!(limit));
        let swap = match r.memory_swap {
            // Docker: memory alone allows as much swap again.
            None => limit.saturating_mul(2),
            Some(-1) => -1,
            Some(s) if s < limit => {
                return Err(BundleError::flag(
                    "--memory-swap",
                    &s.to_string(),
                    format!(
                        "the memory+swap limit must be at least --memory ({limit}), or -1 for unlimited swap"
                    ),
                ));
            }
            Some(s) => s,
        };
        memory.insert("swap".into(), json!(swap));
    } else if let Some(s) = r.memory_swap {
        return Err(BundleError::flag(
            "--memory-swap",
            &s.to_string(),
            "set --memory too: --memory-swap is the memory+swap limit",
        ));
    }
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = Map::new();
    if let Some(n) = r.nano_cpus.filter(|n| *n > 0) {
        let quota = u128::from(n) * u128::from(CPU_PERIOD) / 1_000_000_000;
        let quota = i64::try_from(quota.max(1000))
            .map_err(|_| BundleError::flag("--cpus", &n.to_string(), "too large"))?;
        cpu.insert("quota".into(), json!(quota));
        cpu.insert("period".into(), json!(CPU_PERIOD));
    }
    if let Some(s) = r.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(c) = r.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
        if !c
            .split(',')
            .all(|p| !p.is_empty() && p.split('-').all(|n| n.parse::<u32>().is_ok()))
        {
            return Err(BundleError::flag(
                "--cpuset-cpus",
                c,
                "expected CPU numbers and ranges like 0-3 or 0,2",
            ));
        }
        cpu.insert("cpus".into(), json!(c));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = r.pids_limit {
        out.insert("pids".into(), json!({"limit": if p <= 0 { -1 } else { p }}));
    }
    Ok(Value::Object(out))
}
