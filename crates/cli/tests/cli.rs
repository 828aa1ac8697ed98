//! Container-less verbs: spec, features, list on an empty root, --version/--help.

mod common;

use std::fs;

use common::Runtime;
use serde_json::Value;

fn read_json(p: &std::path::Path) -> Value {
    let s = fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{} is not JSON ({e}): {s}", p.display()))
}

fn namespace_types(cfg: &Value) -> Vec<String> {
    cfg["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn spec_writes_runnable_default_config() {
    let rt = Runtime::new("cli-spec");
    let mut b = rt.bundle();
    fs::remove_file(b.path().join("config.json")).ok();
    rt.cmd(&["spec", "--bundle", b.path_str()]).ok();
    let cfg = read_json(&b.path().join("config.json"));
    assert!(
        cfg["ociVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{cfg}"
    );
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert_eq!(cfg["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(cfg["process"]["terminal"], true);
    assert_eq!(cfg["process"]["cwd"], "/");
    let ns = namespace_types(&cfg);
    for kind in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.iter().any(|n| n == kind), "{kind} missing: {ns:?}");
    }
    assert!(!ns.iter().any(|n| n == "user"), "{ns:?}");
    let mounts: Vec<&str> = cfg["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    for m in ["/proc", "/dev", "/dev/pts", "/dev/shm", "/sys"] {
        assert!(mounts.contains(&m), "{m} missing: {mounts:?}");
    }
    assert!(
        cfg["linux"]["maskedPaths"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
    assert!(
        cfg["linux"]["readonlyPaths"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );

    // The generated config runs as is (apart from the terminal and the command).
    let mut cfg = cfg;
    cfg["process"]["terminal"] = Value::Bool(false);
    cfg["process"]["args"] = serde_json::json!(["sh", "-c", "echo spec-ok"]);
    b.config = cfg;
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["spec-ok"], "{out:?}");
    rt.assert_gone(&id);
}

#[test]
fn spec_rootless() {
    let rt = Runtime::new("cli-spec-rootless");
    let dir = rt.host_dir("bundle");
    rt.cmd(&["spec", "--rootless", "--bundle", dir.to_str().unwrap()])
        .ok();
    let cfg = read_json(&dir.join("config.json"));
    let ns = namespace_types(&cfg);
    assert!(ns.iter().any(|n| n == "user"), "{ns:?}");
    for key in ["uidMappings", "gidMappings"] {
        let maps = cfg["linux"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}"));
        assert!(!maps.is_empty(), "{key}");
        assert_eq!(maps[0]["containerID"], 0, "{key}: {maps:?}");
        assert!(
            maps[0]["size"].as_u64().is_some_and(|s| s >= 1),
            "{key}: {maps:?}"
        );
    }
    assert_eq!(
        cfg["linux"]["uidMappings"][0]["hostID"].as_u64(),
        Some(nix::unistd::geteuid().as_raw() as u64)
    );
}

#[test]
fn spec_does_not_overwrite() {
    let rt = Runtime::new("cli-spec-exists");
    let dir = rt.host_dir("bundle");
    fs::write(dir.join("config.json"), "{\"keep\": true}").unwrap();
    rt.cmd(&["spec", "--bundle", dir.to_str().unwrap()])
        .failed()
        .mentions_any(&["config.json", "exist"]);
    assert_eq!(
        fs::read_to_string(dir.join("config.json")).unwrap(),
        "{\"keep\": true}"
    );
}

#[test]
fn spec_defaults_to_current_dir() {
    let rt = Runtime::new("cli-spec-cwd");
    // The harness runs the runtime with the test dir as its working directory.
    rt.cmd(&["spec"]).ok();
    let cfg = read_json(&rt.base().join("config.json"));
    assert_eq!(cfg["root"]["path"], "rootfs");
}

#[test]
fn features_json() {
    let rt = Runtime::new("cli-features");
    let out = rt.cmd(&["features"]).ok();
    let f: Value = serde_json::from_str(&out.stdout).expect("features is JSON");
    for k in ["ociVersionMin", "ociVersionMax"] {
        assert!(
            f[k].as_str().is_some_and(|v| v.starts_with("1.")),
            "{k}: {f}"
        );
    }
    let hooks: Vec<&str> = f["hooks"]
        .as_array()
        .expect("hooks")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "{h} missing: {hooks:?}");
    }
    let opts = f["mountOptions"].as_array().expect("mountOptions");
    for o in ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec"] {
        assert!(opts.iter().any(|v| v == o), "mount option {o} missing");
    }
    let ns: Vec<&str> = f["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(ns.contains(&n), "namespace {n} missing: {ns:?}");
    }
    let caps = f["linux"]["capabilities"]
        .as_array()
        .expect("linux.capabilities");
    assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"), "{caps:?}");
}

#[test]
fn list_on_empty_root() {
    let rt = Runtime::new("cli-list-empty");
    let out = rt.cmd(&["list"]).ok();
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "only the header: {out:?}");
    assert!(lines[0].starts_with("ID"), "{out:?}");
    let out = rt.cmd(&["list", "--format", "json"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("list json");
    // runc prints `null`; an empty array is as good.
    assert!(
        v.is_null() || v.as_array().is_some_and(Vec::is_empty),
        "{out:?}"
    );
}

#[test]
fn version_and_help() {
    let rt = Runtime::new("cli-version");
    // Wording is free (runc: "runc version 1.1.5\ncommit: ...\nspec: 1.0.2-dev").
    let out = rt.cmd(&["--version"]).ok();
    assert!(out.stdout.chars().any(|c| c.is_ascii_digit()), "{out:?}");
    let out = rt.cmd(&["--help"]).ok();
    for verb in [
        "create", "start", "state", "kill", "delete", "run", "exec", "list", "ps", "spec",
        "features",
    ] {
        assert!(out.stdout.contains(verb), "--help lacks {verb}: {out:?}");
    }
}
