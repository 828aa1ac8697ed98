//! Hostile layers: every way an entry could try to write outside the layer directory.

use std::fs;
use std::path::Path;

use super::*;
use crate::testutil::Tar;

struct Scene {
    _tmp: tempfile::TempDir,
    layer: PathBuf,
    outside: PathBuf,
}

/// A layer dir and, beside it, an "outside" dir holding a file `secret` that must survive.
fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("layer");
    let outside = tmp.path().join("outside");
    fs::create_dir(&layer).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"original").unwrap();
    Scene {
        _tmp: tmp,
        layer,
        outside,
    }
}

fn outside_untouched(s: &Scene) {
    let names: Vec<_> = fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("secret")],
        "outside dir changed"
    );
    assert_eq!(fs::read(s.outside.join("secret")).unwrap(), b"original");
}

fn refused(s: &Scene, tar: Vec<u8>) -> String {
    let err =
        unpack(&tar[..], &s.layer, Whiteouts::Overlay).expect_err("hostile layer must be refused");
    outside_untouched(s);
    assert!(
        matches!(err, UnpackError::Escape { .. }),
        "expected an escape error, got: {err}"
    );
    err.to_string()
}

#[test]
fn dotdot_path_is_refused() {
    let s = scene();
    let e = refused(&s, Tar::new().file("../outside/pwned", b"x").finish());
    assert!(e.contains("'..'"), "{e}");
    let e = refused(
        &s,
        Tar::new()
            .dir("a")
            .file("a/../../outside/pwned", b"x")
            .finish(),
    );
    assert!(e.contains("outside"), "{e}");
}

#[test]
fn absolute_path_is_refused() {
    let s = scene();
    let target = format!("{}/pwned", s.outside.display());
    let e = refused(&s, Tar::new().file(&target, b"x").finish());
    assert!(e.contains("absolute"), "{e}");
}

#[test]
fn absolute_symlink_parent_is_refused() {
    let s = scene();
    let outside = s.outside.to_str().unwrap().to_string();
    let e = refused(
        &s,
        Tar::new()
            .symlink("evil", &outside)
            .file("evil/pwned", b"x")
            .finish(),
    );
    assert!(e.contains("symlink"), "{e}");
}

#[test]
fn relative_symlink_parent_is_refused() {
    let s = scene();
    refused(
        &s,
        Tar::new()
            .symlink("up", "../outside")
            .file("up/pwned", b"x")
            .finish(),
    );
    // Through a chain of symlinks and a nested directory.
    refused(
        &s,
        Tar::new()
            .dir("d")
            .symlink("d/l1", "../l2")
            .symlink("l2", "../outside")
            .file("d/l1/pwned", b"x")
            .finish(),
    );
}

#[test]
fn symlink_parent_to_root_slash_is_refused() {
    let s = scene();
    refused(
        &s,
        Tar::new()
            .symlink("rootlink", "/")
            .file("rootlink/tmp/pwned", b"x")
            .finish(),
    );
}

#[test]
fn hardlink_outside_is_refused() {
    let s = scene();
    refused(&s, Tar::new().hardlink("h", "../outside/secret").finish());
    let abs = format!("{}/secret", s.outside.display());
    refused(&s, Tar::new().hardlink("h", &abs).finish());
    // Via a symlinked parent of the link target.
    let outside = s.outside.to_str().unwrap().to_string();
    refused(
        &s,
        Tar::new()
            .symlink("sl", &outside)
            .hardlink("h", "sl/secret")
            .finish(),
    );
}

#[test]
fn file_over_symlink_replaces_the_link() {
    let s = scene();
    let secret = s.outside.join("secret");
    let tar = Tar::new()
        .symlink("link", secret.to_str().unwrap())
        .file("link", b"inside")
        .finish();
    unpack(&tar[..], &s.layer, Whiteouts::Overlay).unwrap();
    outside_untouched(&s);
    let meta = fs::symlink_metadata(s.layer.join("link")).unwrap();
    assert!(meta.is_file());
    assert_eq!(fs::read(s.layer.join("link")).unwrap(), b"inside");
}

#[test]
fn whiteout_cannot_remove_outside() {
    let s = scene();
    // A whiteout under a symlinked parent, and one naming "..".
    let outside = s.outside.to_str().unwrap().to_string();
    refused(
        &s,
        Tar::new()
            .symlink("o", &outside)
            .file("o/.wh.secret", b"")
            .finish(),
    );
    let tar = Tar::new().file(".wh..", b"").finish();
    assert!(unpack(&tar[..], &s.layer, Whiteouts::Apply).is_err());
    outside_untouched(&s);
}

#[test]
fn directory_over_symlink_does_not_follow() {
    let s = scene();
    let outside = s.outside.to_str().unwrap().to_string();
    // "d" is a symlink to outside; the directory entry "d" must replace it, not merge.
    let tar = Tar::new()
        .symlink("d", &outside)
        .dir("d")
        .file("d/new", b"n")
        .finish();
    unpack(&tar[..], &s.layer, Whiteouts::Overlay).unwrap();
    outside_untouched(&s);
    assert!(Path::new(&s.layer.join("d/new")).is_file());
}
