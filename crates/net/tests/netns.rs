//! Named network namespaces under a private test directory (root only).

use std::fs;
use std::os::unix::fs::MetadataExt;

use std::process::Command;

use peapod_net::{NetnsDir, NetnsError};

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
fn a_new_namespace_has_lo_up_with_its_addresses() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = NetnsDir::new(tmp.path().join("netns"));
    let name = format!("lo-{}", std::process::id());
    let file = dir.create(&name).unwrap();
    let net = format!("--net={}", file.display());
    let run = |args: &[&str]| {
        Command::new("nsenter")
            .arg(&net)
            .args(args)
            .output()
            .unwrap()
    };
    let link = run(&["ip", "-o", "link", "show", "lo"]);
    let addr = run(&["ip", "-o", "addr", "show", "lo"]);
    let ping = run(&["busybox", "ping", "-c1", "-W2", "127.0.0.1"]);
    let links = run(&["ip", "-o", "link", "show"]);
    dir.delete(&name).unwrap();
    dir.unmount_root().unwrap();
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text(&link).contains(",UP"), "{link:?}");
    assert!(text(&addr).contains("inet 127.0.0.1/8"), "{addr:?}");
    assert!(ping.status.success(), "{ping:?}");
    // Nothing but lo: a namespace of its own.
    assert_eq!(text(&links).lines().count(), 1, "{links:?}");
}
