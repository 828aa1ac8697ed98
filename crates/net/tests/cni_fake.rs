//! CNI protocol behaviour against fake shell plugins (no root needed):
//! prevResult chaining, DEL order and cache, error JSON, unknown plugins,
//! malformed lists.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use peapod_net::cni::{CniRuntime, NetworkConfigList, RuntimeConf};
use serde_json::{Value, json};

/// A fake plugin: appends "COMMAND TYPE STDIN" to the file named by LOG= in
/// CNI_ARGS and answers ADD with a result naming itself.
const FAKE: &str = r#"#!/bin/sh
in=$(cat)
log=${CNI_ARGS#*LOG=}; log=${log%%;*}
me=$(basename "$0")
printf '%s %s %s\n' "$CNI_COMMAND" "$me" "$in" >> "$log"
[ "$CNI_COMMAND" = ADD ] || exit 0
n=1; [ "$me" = fb ] && n=2
printf '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"%s"}],"ips":[{"address":"10.9.0.%s/24","interface":0}]}' "$CNI_NETNS" "$n"
"#;

const FAIL: &str = r#"#!/bin/sh
cat >/dev/null
[ "$CNI_COMMAND" = ADD ] || exit 0
echo '{"cniVersion":"1.0.0","code":7,"msg":"boom: no bridge","details":"try again"}'
exit 1
"#;

/// Plugin dir shared by the tests of this binary; written once, before any
/// test spawns a plugin (so no fd of a script being written leaks into a
/// concurrently forked child: ETXTBSY).
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        for (name, body) in [("fa", FAKE), ("fb", FAKE), ("ffail", FAIL)] {
            let p = d.path().join(name);
            fs::write(&p, body).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        d
    })
    .path()
}

fn list(types: &[&str]) -> NetworkConfigList {
    let plugins: Vec<Value> = types.iter().map(|t| json!({"type": t, "k": t})).collect();
    NetworkConfigList::from_value(
        json!({"cniVersion": "1.0.0", "name": "fake", "plugins": plugins}),
    )
    .unwrap()
}

struct Fixture {
    dir: tempfile::TempDir,
    cni: CniRuntime,
    rt: RuntimeConf,
}

fn fixture(id: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cni = CniRuntime::new(
        vec![PathBuf::from("/nonexistent"), plugin_dir().to_path_buf()],
        dir.path().join("cache"),
    );
    let log = dir.path().join("log");
    let rt = RuntimeConf {
        container_id: id.into(),
        netns: "/run/fake/ns".into(),
        ifname: "eth0".into(),
        args: vec![("LOG".into(), log.display().to_string())],
        ..Default::default()
    };
    Fixture { dir, cni, rt }
}

/// (command, plugin, stdin) per logged call.
fn calls(f: &Fixture) -> Vec<(String, String, Value)> {
    let text = fs::read_to_string(f.dir.path().join("log")).unwrap_or_default();
    text.lines()
        .map(|l| {
            let mut it = l.splitn(3, ' ');
            let (c, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            (c.into(), p.into(), serde_json::from_str(s).unwrap())
        })
        .collect()
}

#[test]
fn add_chains_prev_result_and_del_runs_reversed_with_cache() {
    let f = fixture("c1");
    let l = list(&["fa", "fb"]);
    let res = f.cni.add(&l, &f.rt).unwrap();
    assert_eq!(res.addresses(), ["10.9.0.2"]);
    let cache = f.dir.path().join("cache/fake-c1-eth0");
    assert!(cache.exists(), "result cache written");

    let c = calls(&f);
    assert_eq!(c.len(), 2);
    assert_eq!((c[0].0.as_str(), c[0].1.as_str()), ("ADD", "fa"));
    assert_eq!(c[0].2["name"], "fake");
    assert_eq!(c[0].2["cniVersion"], "1.0.0");
    assert_eq!(c[0].2["k"], "fa");
    assert!(c[0].2.get("prevResult").is_none());
    assert_eq!(c[1].2["prevResult"]["ips"][0]["address"], "10.9.0.1/24");

    f.cni.check(&l, &f.rt).unwrap();
    f.cni.del(&l, &f.rt).unwrap();
    let c = calls(&f);
    let order: Vec<_> = c[2..].iter().map(|x| format!("{} {}", x.0, x.1)).collect();
    assert_eq!(order, ["CHECK fa", "CHECK fb", "DEL fb", "DEL fa"]);
    for call in &c[2..] {
        assert_eq!(call.2["prevResult"]["ips"][0]["address"], "10.9.0.2/24");
    }
    assert!(!cache.exists(), "cache removed by DEL");
}

#[test]
fn del_from_cache_alone() {
    let f = fixture("c2");
    f.cni.add(&list(&["fa"]), &f.rt).unwrap();
    let cached = f.cni.cached().unwrap();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].container_id, "c2");
    f.cni.del_cached(&cached[0]).unwrap();
    assert!(f.cni.cached().unwrap().is_empty());
    let last = calls(&f).pop().unwrap();
    assert_eq!((last.0.as_str(), last.1.as_str()), ("DEL", "fa"));
}

#[test]
fn plugin_error_json_becomes_one_line_and_add_is_rolled_back() {
    let f = fixture("c3");
    let err = f
        .cni
        .add(&list(&["fa", "ffail"]), &f.rt)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "CNI plugin ffail ADD failed: boom: no bridge (try again) [code 7]"
    );
    assert!(!err.contains('\n'));
    let order: Vec<_> = calls(&f)
        .iter()
        .map(|x| format!("{} {}", x.0, x.1))
        .collect();
    assert_eq!(order, ["ADD fa", "DEL fa"], "the added plugin is undone");
    assert!(f.cni.cached().unwrap().is_empty());
}

#[test]
fn unknown_plugin_names_it_and_cni_path() {
    let f = fixture("c4");
    let err = f
        .cni
        .add(&list(&["nosuchplugin"]), &f.rt)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nosuchplugin\""), "{err}");
    assert!(err.contains("CNI_PATH=/nonexistent:"), "{err}");
    assert!(err.contains(&plugin_dir().display().to_string()), "{err}");
}

#[test]
fn malformed_conflist_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.conflist");
    fs::write(
        &p,
        "{\"cniVersion\": \"1.0.0\", \"name\": \"x\", \"plugins\": [",
    )
    .unwrap();
    let err = NetworkConfigList::from_file(&p).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("bad CNI network config {}: not JSON", p.display())),
        "{err}"
    );
    assert!(!err.contains('\n'));

    fs::write(
        &p,
        r#"{"cniVersion": "1.0.0", "name": "x", "plugins": [{"typ": "bridge"}]}"#,
    )
    .unwrap();
    let err = NetworkConfigList::from_file(&p).unwrap_err().to_string();
    assert!(err.ends_with("plugins[0]: missing \"type\""), "{err}");
}
