//! batch/v1 Jobs against the real `peapod` binary: completions with
//! parallelism, backoffLimit with restartPolicy Never (a new pod per
//! failure, after the back-off) and OnFailure (restarts count),
//! activeDeadlineSeconds, ttlSecondsAfterFinished, and the example Jobs.

mod peapod_common;

use std::path::Path;
use std::time::Duration;

use peapod_common::{Peapod, have_cni, processes_mentioning, usable, wait_for};
use serde_json::Value;

/// Bound for a Job to end (the back-off of a failing one is 10 + 20 s).
const JOB_TIMEOUT: Duration = Duration::from_secs(150);

/// Deletes the jobs (and so their pods) when the test ends, even on a
/// panic; declared after the [`Peapod`] so it runs first.
struct Cleanup<'a> {
    pp: &'a Peapod,
    jobs: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for j in &self.jobs {
            let _ = self.pp.output(&["delete", "job", j, "--grace-period", "0"]);
        }
        for p in pods(self.pp, None) {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let _ = self
                .pp
                .output(&["delete", "pod", &name, "--grace-period", "0"]);
        }
    }
}

fn write_manifest(pp: &Peapod, file: &str, text: &str) -> String {
    let path = pp.dir().join(file);
    std::fs::write(&path, text).expect("write manifest");
    path.to_string_lossy().into_owned()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A Job running busybox `sh -c SCRIPT`; `extra` lines go into its spec.
fn job(name: &str, script: &str, restart: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra}
  template:
    spec:
      terminationGracePeriodSeconds: 1
      restartPolicy: {restart}
      containers:
        - name: work
          image: busybox
          command: ["sh", "-c", "{script}"]
"#
    )
}

/// The pods (of job `job`, or all), from `get pods -o json`.
fn pods(pp: &Peapod, job: Option<&str>) -> Vec<Value> {
    let mut args = vec!["get", "pods", "-o", "json"];
    let sel = job.map(|j| format!("job-name={j}"));
    if let Some(s) = &sel {
        args.extend(["-l", s.as_str()]);
    }
    let out = pp.output(&args);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The Job from `get jobs NAME -o json` (Null when there is none).
fn get_job(pp: &Peapod, name: &str) -> Value {
    let out = pp.output(&["get", "jobs", name, "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// Waits for the Job's condition (Complete or Failed); the Job then.
fn wait_condition(pp: &Peapod, name: &str, condition: &str) -> Value {
    let mut last = Value::Null;
    let ok = wait_for(JOB_TIMEOUT, || {
        last = get_job(pp, name);
        last["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == condition))
    });
    assert!(
        ok,
        "job {name} never got condition {condition}: {last:#}\n{}",
        pp.ok(&["describe", "job", name])
    );
    last
}

fn phase(p: &Value) -> &str {
    p["status"]["phase"].as_str().unwrap_or_default()
}

#[test]
fn job_with_completions_and_parallelism_completes() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-complete");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["done3".into()],
    };
    let text = job(
        "done3",
        "echo done",
        "Never",
        "  completions: 3\n  parallelism: 2",
    );
    let file = write_manifest(&pp, "done3.yaml", &text);
    let out = pp.ok(&["apply", "-f", &file]);
    assert_eq!(out.trim(), "job.batch/done3 created");
    let j = wait_condition(&pp, "done3", "Complete");
    assert_eq!(j["status"]["succeeded"], 3, "{j:#}");
    assert!(j["status"]["completionTime"].is_string(), "{j:#}");
    assert!(j["status"]["startTime"].is_string(), "{j:#}");
    let uid = j["metadata"]["uid"].as_str().expect("uid").to_string();
    let ps = pods(&pp, Some("done3"));
    assert_eq!(ps.len(), 3, "{ps:#?}");
    for p in &ps {
        assert_eq!(phase(p), "Succeeded", "{p:#}");
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        let suffix = name.strip_prefix("done3-").expect("named after the job");
        assert_eq!(suffix.len(), 5, "{name}");
        assert!(
            suffix
                .bytes()
                .all(|c| b"bcdfghjklmnpqrstvwxz2456789".contains(&c)),
            "{name}"
        );
        let labels = &p["metadata"]["labels"];
        assert_eq!(labels["job-name"], "done3");
        assert_eq!(labels["batch.kubernetes.io/job-name"], "done3");
        assert_eq!(labels["controller-uid"], uid.as_str());
    }
    let table = pp.ok(&["get", "jobs"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("done3 "))
        .unwrap_or_else(|| panic!("no row for done3:\n{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "Complete", "{table}");
    assert_eq!(cols[2], "3/3", "{table}");
    // The same Job again changes nothing.
    let out = pp.ok(&["apply", "-f", &file]);
    assert_eq!(out.trim(), "job.batch/done3 unchanged");
    let described = pp.ok(&["describe", "job", "done3"]);
    assert!(
        described.contains("0 Active / 3 Succeeded / 0 Failed"),
        "{described}"
    );
    let out = pp.ok(&["delete", "job", "done3"]);
    assert_eq!(out.trim(), "job.batch \"done3\" deleted");
    assert!(pods(&pp, Some("done3")).is_empty());
    assert!(get_job(&pp, "done3").is_null());
}

#[test]
fn failing_job_with_restart_never_stops_at_its_backoff_limit() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-backoff");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["fails".into()],
    };
    let file = write_manifest(
        &pp,
        "fails.yaml",
        &job("fails", "exit 1", "Never", "  backoffLimit: 2"),
    );
    pp.ok(&["apply", "-f", &file]);
    let j = wait_condition(&pp, "fails", "Failed");
    assert_eq!(
        j["status"]["conditions"][0]["reason"], "BackoffLimitExceeded",
        "{j:#}"
    );
    assert_eq!(j["status"]["failed"], 3, "{j:#}");
    // No fourth pod comes.
    std::thread::sleep(Duration::from_secs(2));
    let ps = pods(&pp, Some("fails"));
    assert_eq!(ps.len(), 3, "{ps:#?}");
    assert!(ps.iter().all(|p| phase(p) == "Failed"), "{ps:#?}");
    let table = pp.ok(&["get", "jobs"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("fails ") && l.contains("Failed")),
        "{table}"
    );
}

#[test]
fn failing_job_with_restart_on_failure_fails_after_its_restarts() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-onfailure");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["restarts".into()],
    };
    let file = write_manifest(
        &pp,
        "restarts.yaml",
        &job("restarts", "exit 3", "OnFailure", "  backoffLimit: 1"),
    );
    pp.ok(&["apply", "-f", &file]);
    let j = wait_condition(&pp, "restarts", "Failed");
    assert_eq!(
        j["status"]["conditions"][0]["reason"], "BackoffLimitExceeded",
        "{j:#}"
    );
    // One pod, restarted in place.
    let ps = pods(&pp, Some("restarts"));
    assert_eq!(ps.len(), 1, "{ps:#?}");
    let restarts = ps[0]["status"]["containerStatuses"][0]["restartCount"]
        .as_u64()
        .unwrap_or_default();
    assert_eq!(restarts, 1, "{ps:#?}");
}

#[test]
fn job_past_its_active_deadline_fails_and_leaves_no_running_pod() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-deadline");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["slow".into()],
    };
    let file = write_manifest(
        &pp,
        "slow.yaml",
        &job("slow", "sleep 60", "Never", "  activeDeadlineSeconds: 3"),
    );
    pp.ok(&["apply", "-f", &file]);
    let j = wait_condition(&pp, "slow", "Failed");
    assert_eq!(
        j["status"]["conditions"][0]["reason"], "DeadlineExceeded",
        "{j:#}"
    );
    let mut last = Vec::new();
    let gone = wait_for(Duration::from_secs(30), || {
        last = pods(&pp, Some("slow"));
        last.is_empty()
    });
    assert!(gone, "pods left after the deadline: {last:#?}");
    let j = get_job(&pp, "slow");
    assert!(j["status"]["active"].is_null(), "{j:#}");
}

#[test]
fn finished_job_is_deleted_after_its_ttl() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-ttl");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["brief".into()],
    };
    let file = write_manifest(
        &pp,
        "brief.yaml",
        &job("brief", "echo bye", "Never", "  ttlSecondsAfterFinished: 2"),
    );
    pp.ok(&["apply", "-f", &file]);
    wait_condition(&pp, "brief", "Complete");
    let gone = wait_for(Duration::from_secs(30), || {
        get_job(&pp, "brief").is_null() && pods(&pp, Some("brief")).is_empty()
    });
    assert!(gone, "{}", pp.ok(&["get", "jobs"]));
    let root = pp.root.to_string_lossy().into_owned();
    let controller_left = wait_for(Duration::from_secs(10), || {
        processes_mentioning(&root).into_iter().all(|pid| {
            !std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("__job-supervise"))
        })
    });
    assert!(controller_left, "the job's controller is still running");
}

#[test]
fn example_jobs_run_two_containers() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-examples");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["two-containers".into(), "shared-pid".into()],
    };
    for (file, name) in [
        ("two-containers-job.yaml", "two-containers"),
        ("shared-pid-job.yaml", "shared-pid"),
    ] {
        let out = pp.ok(&["apply", "-f", &example(file)]);
        assert_eq!(out.trim(), format!("job.batch/{name} created"));
        let mut table = String::new();
        let running = wait_for(Duration::from_secs(90), || {
            table = pp.ok(&["get", "pods", "-l", &format!("job-name={name}")]);
            table
                .lines()
                .skip(1)
                .any(|l| l.contains(" 2/2 ") && l.contains(" Running "))
        });
        assert!(running, "{name}: {table}");
        let jobs = pp.ok(&["get", "jobs"]);
        assert!(
            jobs.lines()
                .any(|l| l.starts_with(&format!("{name} ")) && l.contains("Running")),
            "{jobs}"
        );
        let out = pp.ok(&["delete", "job", name, "--grace-period", "0"]);
        assert_eq!(out.trim(), format!("job.batch \"{name}\" deleted"));
        assert!(pods(&pp, Some(name)).is_empty());
    }
}
