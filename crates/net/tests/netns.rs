//! Named network namespaces under a private test directory (root only).

use std::fs;
use std::os::unix::fs::MetadataExt;

use std::path::PathBuf;
use std::process::Command;

use peapod_net::cni::{CniRuntime, RuntimeConf};
use peapod_net::{NetnsDir, NetnsError, defaults};

#[test]
fn create_open_list_delete() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = NetnsDir::new(tmp.path().join("netns"));
    let path = dir.create("one").unwrap();
    assert!(matches!(dir.create("one"), Err(NetnsError::Exists(_))));

    // A distinct namespace: its inode differs from ours.
    let ours = fs::metadata("/proc/self/ns/net").unwrap().ino();
    let file = dir.open("one").unwrap();
    assert_ne!(file.metadata().unwrap().ino(), ours);
    assert_eq!(
        fs::metadata(&path).unwrap().ino(),
        file.metadata().unwrap().ino()
    );
    drop(file);

    // A half-created leftover (file without mount) is listed and removable.
    fs::write(tmp.path().join("netns/stale"), "").unwrap();
    assert_eq!(dir.list().unwrap(), ["one", "stale"]);
    assert!(matches!(dir.open("stale"), Err(NetnsError::NotFound(_))));
    assert!(matches!(dir.path("../x"), Err(NetnsError::InvalidName(_))));

    for name in ["one", "stale", "one", "never"] {
        dir.delete(name).unwrap();
    }
    assert!(dir.list().unwrap().is_empty());
    dir.unmount_root().unwrap();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&tmp.path().display().to_string()));
}

#[test]
fn loopback_plugin_brings_lo_up() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/usr/lib/cni/loopback").exists() {
        eprintln!("skipped: needs root and /usr/lib/cni/loopback");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = NetnsDir::new(tmp.path().join("netns"));
    let name = format!("lo-{}", std::process::id());
    let file = dir.create(&name).unwrap();
    let cni = CniRuntime::new(
        vec![PathBuf::from("/usr/lib/cni")],
        tmp.path().join("cache"),
    );
    let rt = RuntimeConf {
        container_id: name.clone(),
        netns: file.clone(),
        ifname: "lo".into(),
        ..Default::default()
    };
    let lo = defaults::loopback();
    let net = format!("--net={}", file.display());
    let ping = || {
        Command::new("nsenter")
            .args([net.as_str(), "busybox", "ping", "-c1", "-W2", "127.0.0.1"])
            .output()
            .unwrap()
    };
    assert!(!ping().status.success(), "lo is down in a fresh netns");
    let added = cni.add(&lo, &rt);
    let reachable = ping();
    let deleted = cni.del(&lo, &rt);
    dir.delete(&name).unwrap();
    dir.unmount_root().unwrap();
    added.unwrap();
    assert!(reachable.status.success(), "{reachable:?}");
    deleted.unwrap();
}
