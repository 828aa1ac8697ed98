use std::fs;
use std::path::Path;

use crate::ImageService;

fn rootfs(svc: &ImageService, name: &str) -> std::path::PathBuf {
    let img = svc.load(name).unwrap();
    let top = svc.unpack(&img).unwrap().unwrap();
    svc.snapshots().graph_driver(&top).unwrap().data["Dir"]
        .clone()
        .into()
}

#[test]
fn busybox_with_applets() {
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox is not installed (busybox-static)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let svc = ImageService::open(tmp.path(), "vfs").unwrap();
    let img = svc
        .build_from_host("busybox", &["/bin/busybox".into()])
        .unwrap();
    assert_eq!(img.record.name, "docker.io/library/busybox:latest");
    assert_eq!(
        img.config.config.as_ref().unwrap().cmd.as_deref(),
        Some(&["sh".to_string()][..])
    );
    let root = rootfs(&svc, "busybox");
    assert!(root.join("bin/busybox").exists());
    for applet in ["bin/sh", "bin/ls", "bin/cat"] {
        let p = root.join(applet);
        let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{applet}: {e}"));
        assert!(m.file_type().is_symlink() || m.is_file(), "{applet}");
    }
    assert!(root.join("etc/passwd").is_file());
    assert!(root.join("tmp").is_dir());
}

#[test]
fn dynamic_program_gets_its_libraries() {
    let sh = Path::new("/bin/sh");
    if !sh.exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let svc = ImageService::open(tmp.path(), "vfs").unwrap();
    svc.build_from_host("local/sh:1", &["/bin/sh".into()])
        .unwrap();
    let root = rootfs(&svc, "local/sh:1");
    for dep in super::elf::dependencies(sh).unwrap() {
        let inside = root.join(dep.strip_prefix("/").unwrap());
        assert!(inside.exists(), "{} missing from the image", dep.display());
    }
    // The image runs: chroot into it when we can.
    if nix::unistd::geteuid().is_root() {
        let out = std::process::Command::new("chroot")
            .arg(&root)
            .args(["/bin/sh", "-c", "echo in-image"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "in-image",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn unknown_program_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = ImageService::open(tmp.path(), "vfs").unwrap();
    let err = svc
        .build_from_host("x", &["/no/such/prog".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/no/such/prog") && err.contains("not found"),
        "{err}"
    );
    assert!(svc.records().unwrap().is_empty());
}
