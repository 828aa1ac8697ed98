//! config.json `process` attributes: args, env, cwd, user, capabilities, rlimits,
//! noNewPrivileges.

mod common;

use common::{Runtime, require_private_ns};
use serde_json::json;

/// CAP_AUDIT_WRITE (29) | CAP_KILL (5) | CAP_NET_BIND_SERVICE (10): `runc spec`'s set.
const DEFAULT_CAPS_HEX: &str = "0000000020000420";

fn status_report() -> &'static str {
    "for k in CapBnd CapEff CapPrm NoNewPrivs; do grep \"^$k:\" /proc/self/status | tr -d '\\t'; done; \
     echo nofile=$(ulimit -n); echo uid=$(id -u) gid=$(id -g) groups=$(id -G); \
     echo cwd=$(pwd); echo foo=$FOO; echo path=$PATH"
}

#[test]
fn root_process_attributes() {
    let rt = Runtime::new("proc-root");
    let mut b = rt.bundle();
    b.env("FOO=bar").cwd("/tmp").sh(status_report());
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            format!("CapBnd:{DEFAULT_CAPS_HEX}"),
            format!("CapEff:{DEFAULT_CAPS_HEX}"),
            format!("CapPrm:{DEFAULT_CAPS_HEX}"),
            "NoNewPrivs:1".to_string(),
            "nofile=1024".to_string(),
            "uid=0 gid=0 groups=0".to_string(),
            "cwd=/tmp".to_string(),
            "foo=bar".to_string(),
            "path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ],
        "{out:?}"
    );
}

#[test]
fn unprivileged_user_with_additional_gids() {
    let rt = Runtime::new("proc-user");
    let mut b = rt.bundle();
    b.sh(status_report());
    b.config["process"]["user"] = json!({"uid": 65534, "gid": 65534, "additionalGids": [5]});
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    let lines = out.lines();
    assert_eq!(lines[0], format!("CapBnd:{DEFAULT_CAPS_HEX}"), "{out:?}");
    assert!(lines.contains(&"NoNewPrivs:0".to_string()), "{out:?}");
    assert!(lines.contains(&"nofile=256".to_string()), "{out:?}");
    let ids = lines.iter().find(|l| l.starts_with("uid=")).unwrap();
    assert!(ids.starts_with("uid=65534 gid=65534 groups="), "{out:?}");
    let groups: Vec<&str> = ids.split("groups=").nth(1).unwrap().split(' ').collect();
    assert!(
        groups.contains(&"5") && groups.contains(&"65534"),
        "{out:?}"
    );
    assert!(
        !groups.contains(&"0"),
        "supplementary groups leaked: {out:?}"
    );
    assert!(lines.contains(&"cwd=/".to_string()), "{out:?}");
}

#[test]
fn added_capability_is_effective() {
    let rt = Runtime::new("proc-caps");
    let mut b = rt.bundle();
    // CAP_NET_ADMIN lets `ip addr add` succeed; without it, it fails.
    b.sh(&format!(
        "{}ip addr add 10.9.8.7/32 dev lo 2>/dev/null && echo added || echo denied",
        require_private_ns(&["net"])
    ));
    let id = rt.id();
    assert_eq!(rt.run(&b, &id).ok().lines(), ["denied"]);
    b.add_caps(&["CAP_NET_ADMIN"]);
    let id = rt.id();
    assert_eq!(rt.run(&b, &id).ok().lines(), ["added"]);
}

#[test]
fn args_are_passed_verbatim() {
    let rt = Runtime::new("proc-args");
    let mut b = rt.bundle();
    b.args(&[
        "sh",
        "-c",
        "for a in \"$@\"; do echo \"[$a]\"; done",
        "argv0",
        "a b",
        "",
        "*",
    ]);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.stdout, "[a b]\n[]\n[*]\n", "{out:?}");
}
