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

/// A Job like [`job`] whose container sees the host directory `state` at
/// /state (to remember across pods whether it already ran).
fn job_with_state(name: &str, script: &str, restart: &str, extra: &str, state: &Path) -> String {
    format!(
        r#"{}          volumeMounts:
            - name: state
              mountPath: /state
      volumes:
        - name: state
          hostPath:
            path: {}
"#,
        job(name, script, restart, extra),
        state.display()
    )
}

/// A directory for a Job's state, under the test's own directory.
fn state_dir(pp: &Peapod, name: &str) -> std::path::PathBuf {
    let dir = pp.dir().join(name);
    std::fs::create_dir_all(&dir).expect("state dir");
    dir
}

fn condition<'a>(j: &'a Value, kind: &str) -> &'a Value {
    j["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .unwrap_or(&Value::Null)
}

fn pod_name(p: &Value) -> String {
    p["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn wait_for_job_conditions_and_delete() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-wait");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["quick".into(), "broken".into()],
    };
    let quick = write_manifest(&pp, "quick.yaml", &job("quick", "echo done", "Never", ""));
    let broken = write_manifest(
        &pp,
        "broken.yaml",
        &job("broken", "exit 1", "Never", "  backoffLimit: 0"),
    );
    pp.ok(&["apply", "-f", &quick, "-f", &broken]);
    // kubectl's condition names in any case, and its kinds.
    let out = pp.ok(&[
        "wait",
        "--for=condition=complete",
        "job/quick",
        "--timeout",
        "90s",
    ]);
    assert_eq!(out.trim(), "job.batch/quick condition met");
    let out = pp.ok(&[
        "wait",
        "--for=condition=SuccessCriteriaMet",
        "jobs.batch/quick",
    ]);
    assert_eq!(out.trim(), "job.batch/quick condition met");
    let j = get_job(&pp, "quick");
    for kind in ["SuccessCriteriaMet", "Complete"] {
        let c = condition(&j, kind);
        assert_eq!(c["status"], "True", "{kind}: {j:#}");
        assert_eq!(c["reason"], "CompletionsReached", "{kind}: {j:#}");
        assert!(c["message"].is_string(), "{kind}: {j:#}");
        assert!(c["lastTransitionTime"].is_string(), "{kind}: {j:#}");
    }
    assert!(condition(&j, "Failed").is_null(), "{j:#}");
    // A condition that does not come: kubectl's timeout error.
    let (code, _, err) = pp.code(&[
        "wait",
        "--for=condition=Failed",
        "job/quick",
        "--timeout",
        "1s",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("timed out waiting for the condition on jobs/quick"),
        "{err}"
    );
    let out = pp.ok(&[
        "wait",
        "--for=condition=FAILED",
        "job/broken",
        "--timeout",
        "90s",
    ]);
    assert_eq!(out.trim(), "job.batch/broken condition met");
    let j = get_job(&pp, "broken");
    for kind in ["FailureTarget", "Failed"] {
        let c = condition(&j, kind);
        assert_eq!(c["status"], "True", "{kind}: {j:#}");
        assert_eq!(c["reason"], "BackoffLimitExceeded", "{kind}: {j:#}");
        assert_eq!(
            c["message"], "Job has reached the specified backoff limit",
            "{j:#}"
        );
    }
    assert!(condition(&j, "Complete").is_null(), "{j:#}");
    // A condition no Job has, and a Job that is not there.
    let (code, _, err) = pp.code(&["wait", "--for=condition=Ready", "job/quick"]);
    assert_ne!(code, 0);
    assert!(err.contains("Complete, Failed"), "{err}");
    let (code, _, err) = pp.code(&["wait", "--for=condition=Complete", "job/absent"]);
    assert_ne!(code, 0);
    assert!(err.contains("\"absent\" not found"), "{err}");
    // Delete: a timeout while it is there, met once it is gone.
    let (code, _, err) = pp.code(&["wait", "--for=delete", "job/quick", "--timeout", "1s"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("timed out waiting for the condition on jobs/quick"),
        "{err}"
    );
    let waiter = pp
        .command(&["wait", "--for=delete", "job/quick", "--timeout", "60s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn wait");
    pp.ok(&["delete", "job", "quick"]);
    let out = waiter.wait_with_output().expect("wait output");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "job.batch/quick condition met"
    );
}

#[test]
fn indexed_job_gives_each_pod_its_index_and_retries_a_failed_one() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-indexed");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["idx".into()],
    };
    let state = state_dir(&pp, "idx-state");
    // Index 1 fails the first time only.
    let script = "echo index=$JOB_COMPLETION_INDEX host=$(hostname); if [ $JOB_COMPLETION_INDEX = 1 ] && [ ! -e /state/tried ]; then touch /state/tried; exit 1; fi";
    let text = job_with_state(
        "idx",
        script,
        "Never",
        "  completionMode: Indexed\n  completions: 3\n  parallelism: 3\n  backoffLimit: 2",
        &state,
    );
    let file = write_manifest(&pp, "idx.yaml", &text);
    pp.ok(&["apply", "-f", &file]);
    let j = wait_condition(&pp, "idx", "Complete");
    assert_eq!(j["status"]["succeeded"], 3, "{j:#}");
    assert_eq!(j["status"]["failed"], 1, "{j:#}");
    assert_eq!(j["status"]["completedIndexes"], "0-2", "{j:#}");
    assert_eq!(j["spec"]["completionMode"], "Indexed", "{j:#}");
    let ps = pods(&pp, Some("idx"));
    assert_eq!(ps.len(), 4, "{ps:#?}");
    let mut succeeded = Vec::new();
    for p in &ps {
        let name = pod_name(p);
        let index = p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap_or_else(|| panic!("no index label: {p:#}"))
            .to_string();
        assert_eq!(
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"],
            index.as_str(),
            "{p:#}"
        );
        let rest = name
            .strip_prefix(&format!("idx-{index}-"))
            .unwrap_or_else(|| panic!("{name} is not idx-{index}-<random>"));
        assert_eq!(rest.len(), 5, "{name}");
        let logs = pp.ok(&["logs", &name, "-c", "work"]);
        assert_eq!(
            logs.trim(),
            format!("index={index} host=idx-{index}"),
            "{name}"
        );
        if phase(p) == "Succeeded" {
            succeeded.push(index);
        } else {
            assert_eq!(index, "1", "only index 1 failed: {p:#}");
        }
    }
    succeeded.sort();
    assert_eq!(succeeded, ["0", "1", "2"]);
    let described = pp.ok(&["describe", "job", "idx"]);
    assert!(described.contains("Completed Indexes: 0-2"), "{described}");
}

#[test]
fn indexed_job_with_backoff_limit_per_index_fails_its_failed_index() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-per-index");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["perindex".into()],
    };
    let text = job(
        "perindex",
        "test $JOB_COMPLETION_INDEX != 1",
        "Never",
        "  completionMode: Indexed\n  completions: 3\n  parallelism: 3\n  backoffLimitPerIndex: 0",
    );
    let file = write_manifest(&pp, "perindex.yaml", &text);
    pp.ok(&["apply", "-f", &file]);
    let j = wait_condition(&pp, "perindex", "Failed");
    assert_eq!(condition(&j, "Failed")["reason"], "FailedIndexes", "{j:#}");
    assert_eq!(j["status"]["completedIndexes"], "0,2", "{j:#}");
    assert_eq!(j["status"]["failedIndexes"], "1", "{j:#}");
    // The failed index was not tried again.
    assert_eq!(pods(&pp, Some("perindex")).len(), 3);
}

#[test]
fn suspended_job_runs_no_pods_until_resumed_and_changes_in_place() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-suspend");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["later".into(), "pausable".into()],
    };
    // Created suspended: no pod until resumed.
    let later = |suspend: bool| {
        job(
            "later",
            "echo ran",
            "Never",
            &format!("  suspend: {suspend}"),
        )
    };
    let file = write_manifest(&pp, "later.yaml", &later(true));
    assert_eq!(
        pp.ok(&["apply", "-f", &file]).trim(),
        "job.batch/later created"
    );
    let out = pp.ok(&["wait", "--for=condition=Suspended", "job/later"]);
    assert_eq!(out.trim(), "job.batch/later condition met");
    let j = get_job(&pp, "later");
    assert_eq!(
        condition(&j, "Suspended")["reason"],
        "JobSuspended",
        "{j:#}"
    );
    assert!(j["status"]["startTime"].is_null(), "{j:#}");
    let table = pp.ok(&["get", "jobs", "later"]);
    assert!(table.contains("Suspended"), "{table}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(pods(&pp, Some("later")).is_empty());
    let uid = j["metadata"]["uid"].clone();
    let file = write_manifest(&pp, "later.yaml", &later(false));
    assert_eq!(
        pp.ok(&["apply", "-f", &file]).trim(),
        "job.batch/later configured"
    );
    let j = wait_condition(&pp, "later", "Complete");
    assert_eq!(j["metadata"]["uid"], uid, "resumed in place: {j:#}");
    let c = condition(&j, "Suspended");
    assert_eq!(c["status"], "False", "{j:#}");
    assert_eq!(c["reason"], "JobResumed", "{j:#}");

    // A running Job: parallelism up, then suspended (its pods go and do
    // not count as failures), then resumed.
    let pausable = |suspend: bool, parallelism: u32| {
        job(
            "pausable",
            "sleep 30",
            "Never",
            &format!("  completions: 2\n  parallelism: {parallelism}\n  suspend: {suspend}"),
        )
    };
    let file = write_manifest(&pp, "pausable.yaml", &pausable(false, 1));
    pp.ok(&["apply", "-f", &file]);
    let running = |n: usize| {
        move |pp: &Peapod| {
            pods(pp, Some("pausable"))
                .iter()
                .filter(|p| phase(p) == "Running")
                .count()
                == n
        }
    };
    assert!(wait_for(JOB_TIMEOUT, || running(1)(&pp)), "no pod runs");
    let file = write_manifest(&pp, "pausable.yaml", &pausable(false, 2));
    assert_eq!(
        pp.ok(&["apply", "-f", &file]).trim(),
        "job.batch/pausable configured"
    );
    assert!(
        wait_for(JOB_TIMEOUT, || running(2)(&pp)),
        "parallelism 2 never ran two pods: {:#?}",
        pods(&pp, Some("pausable"))
    );
    let file = write_manifest(&pp, "pausable.yaml", &pausable(true, 2));
    pp.ok(&["apply", "-f", &file]);
    let gone = wait_for(JOB_TIMEOUT, || {
        get_job(&pp, "pausable")["status"]["active"].is_null()
            && pods(&pp, Some("pausable")).is_empty()
    });
    assert!(gone, "{:#?}", pods(&pp, Some("pausable")));
    let j = get_job(&pp, "pausable");
    assert!(j["status"]["failed"].is_null(), "{j:#}");
    assert_eq!(condition(&j, "Suspended")["status"], "True", "{j:#}");
    // Anything else in the spec cannot change.
    let changed = pausable(true, 2).replace("sleep 30", "sleep 31");
    let file2 = write_manifest(&pp, "pausable2.yaml", &changed);
    let (code, _, err) = pp.code(&["apply", "-f", &file2]);
    assert_ne!(code, 0);
    assert!(
        err.contains("The Job \"pausable\" is invalid: spec.template: field is immutable"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        get_job(&pp, "pausable")["metadata"]["uid"],
        j["metadata"]["uid"]
    );
    let file = write_manifest(&pp, "pausable.yaml", &pausable(false, 2));
    pp.ok(&["apply", "-f", &file]);
    assert!(
        wait_for(JOB_TIMEOUT, || running(2)(&pp)),
        "no pods after resume"
    );
    let j = get_job(&pp, "pausable");
    assert_eq!(condition(&j, "Suspended")["status"], "False", "{j:#}");
}

#[test]
fn pod_failure_policy_fails_ignores_or_counts() {
    if !usable() || !have_cni() {
        return;
    }
    let pp = Peapod::new("job-policy");
    let _cleanup = Cleanup {
        pp: &pp,
        jobs: vec!["fatal".into(), "flaky".into(), "counted".into()],
    };
    let policy = |action: &str, operator: &str, code: u32| {
        format!(
            "  backoffLimit: {}\n  podFailurePolicy:\n    rules:\n      - action: {action}\n        onExitCodes:\n          containerName: work\n          operator: {operator}\n          values: [{code}]\n      - action: Ignore\n        onPodConditions:\n          - type: DisruptionTarget",
            if action == "FailJob" { 6 } else { 0 }
        )
    };
    let fatal = write_manifest(
        &pp,
        "fatal.yaml",
        &job("fatal", "exit 42", "Never", &policy("FailJob", "In", 42)),
    );
    // Exit 3 is ignored: the Job (backoffLimit 0) runs a new pod.
    let state = state_dir(&pp, "flaky-state");
    let flaky = write_manifest(
        &pp,
        "flaky.yaml",
        &job_with_state(
            "flaky",
            "if [ ! -e /state/tried ]; then touch /state/tried; exit 3; fi",
            "Never",
            &policy("Ignore", "In", 3),
            &state,
        ),
    );
    // Count: an exit code other than 42 counts toward backoffLimit 0.
    let counted = write_manifest(
        &pp,
        "counted.yaml",
        &job("counted", "exit 5", "Never", &policy("Count", "NotIn", 42)),
    );
    pp.ok(&["apply", "-f", &fatal, "-f", &flaky, "-f", &counted]);
    let j = wait_condition(&pp, "fatal", "Failed");
    let c = condition(&j, "Failed");
    assert_eq!(c["reason"], "PodFailurePolicy", "{j:#}");
    let message = c["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Container work for pod default/fatal-")
            && message.ends_with("failed with exit code 42 matching FailJob rule at index 0"),
        "{message}"
    );
    assert_eq!(pods(&pp, Some("fatal")).len(), 1, "no second pod");
    let j = wait_condition(&pp, "flaky", "Complete");
    assert!(j["status"]["failed"].is_null(), "ignored: {j:#}");
    assert_eq!(j["status"]["succeeded"], 1, "{j:#}");
    assert_eq!(pods(&pp, Some("flaky")).len(), 2);
    let j = wait_condition(&pp, "counted", "Failed");
    assert_eq!(condition(&j, "Failed")["reason"], "BackoffLimitExceeded");
    assert_eq!(j["status"]["failed"], 1, "{j:#}");
}

#[test]
fn bad_job_specs_are_refused_whole() {
    if !usable() {
        return;
    }
    let pp = Peapod::new("job-invalid");
    let policy = "  podFailurePolicy:\n    rules:\n      - action: FailJob\n        onExitCodes:\n          operator: In\n          values: [1]";
    for (text, expect) in [
        (
            job("onfail", "true", "OnFailure", policy),
            "spec.template.spec.restartPolicy: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
        ),
        (
            job("nocount", "true", "Never", "  completionMode: Indexed"),
            "spec.completions: required when completionMode is Indexed",
        ),
    ] {
        let file = write_manifest(&pp, "bad.yaml", &text);
        let (code, _, err) = pp.code(&["apply", "-f", &file]);
        assert_ne!(code, 0);
        assert!(err.contains(expect), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let out = pp.output(&["get", "jobs", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0), "{v:#}");
}
