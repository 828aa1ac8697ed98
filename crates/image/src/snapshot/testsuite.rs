//! One test suite that every snapshotter must pass (like containerd's snapshots/testsuite).
//! Tests that mount run in a private mount namespace of their own thread, and unmount
//! before their temp dir is removed.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::testutil::{Tar, is_root, private_mount_ns};
use crate::unpack::unpack;

struct Env {
    sn: Box<dyn Snapshotter>,
    // Declared last: dropped after every MountGuard a test holds.
    tmp: tempfile::TempDir,
}

fn env(driver: &str) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let sn = open(driver, &tmp.path().join("root")).unwrap();
    Env { sn, tmp }
}

/// Unmounts on drop, so a failing assertion still leaves nothing mounted.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = mount::unmount(&self.0);
    }
}

impl Env {
    fn mount(&self, mounts: &[Mount], name: &str) -> MountGuard {
        let target = self.tmp.path().join("mnt").join(name);
        fs::create_dir_all(&target).unwrap();
        mount::mount_all(mounts, &target).unwrap();
        MountGuard(target)
    }

    /// Commits a layer made by unpacking `tar` on top of `parent`.
    fn layer(&self, name: &str, parent: Option<&str>, tar: &[u8]) {
        let key = format!("{name}-extract");
        self.sn.prepare(&key, parent).unwrap();
        let t = self.sn.write_target(&key).unwrap();
        unpack(tar, &t.dir, t.whiteouts).unwrap();
        self.sn.commit(name, &key).unwrap();
    }

    fn mounted_under_tmp(&self) -> Vec<String> {
        let info = fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
        let tmp = self.tmp.path().to_string_lossy().into_owned();
        info.lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&tmp))
            .map(str::to_string)
            .collect()
    }
}

fn needs_root() -> bool {
    if !is_root() {
        eprintln!("skipped: mounting needs root");
        return false;
    }
    private_mount_ns();
    true
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

pub fn layers_stack_and_never_change(driver: &str) {
    if !needs_root() {
        return;
    }
    let e = env(driver);
    e.layer(
        "A",
        None,
        &Tar::new()
            .file("base", b"v1")
            .file("gone", b"g")
            .file("dir/f", b"f")
            .finish(),
    );
    // A container-like active snapshot: change things through the mount.
    let mounts = e.sn.prepare("b-active", Some("A")).unwrap();
    {
        let m = e.mount(&mounts, "b");
        assert_eq!(read(&m.0.join("base")), "v1");
        fs::remove_file(m.0.join("gone")).unwrap();
        fs::write(m.0.join("base"), "v2").unwrap();
        fs::write(m.0.join("new"), "n").unwrap();
    }
    e.sn.commit("B", "b-active").unwrap();
    let v = e.sn.view("v", Some("B")).unwrap();
    {
        let m = e.mount(&v, "v");
        assert_eq!(read(&m.0.join("base")), "v2");
        assert!(!m.0.join("gone").exists());
        assert_eq!(read(&m.0.join("new")), "n");
        assert_eq!(read(&m.0.join("dir/f")), "f");
        let err = fs::write(m.0.join("x"), "x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "a view is read-only");
    }
    let va = e.sn.view("va", Some("A")).unwrap();
    {
        let m = e.mount(&va, "va");
        assert_eq!(
            read(&m.0.join("base")),
            "v1",
            "the lower layer never changes"
        );
        assert!(m.0.join("gone").exists());
        assert!(!m.0.join("new").exists());
    }
    assert!(e.mounted_under_tmp().is_empty());
}

pub fn whiteouts_from_layers(driver: &str) {
    if !needs_root() {
        return;
    }
    let e = env(driver);
    e.layer(
        "L1",
        None,
        &Tar::new()
            .file("a", b"1")
            .file("d/x", b"2")
            .file("d/y", b"3")
            .file("keep", b"k")
            .finish(),
    );
    e.layer(
        "L2",
        Some("L1"),
        &Tar::new()
            .file(".wh.a", b"")
            .dir("d")
            .file("d/.wh..wh..opq", b"")
            .file("d/z", b"4")
            .finish(),
    );
    let v = e.sn.view("v", Some("L2")).unwrap();
    let m = e.mount(&v, "v");
    assert!(!m.0.join("a").exists());
    assert!(m.0.join("keep").exists());
    let mut names: Vec<_> = fs::read_dir(m.0.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec![std::ffi::OsString::from("z")]);
}

pub fn kinds_and_errors(driver: &str) {
    let e = env(driver);
    e.sn.prepare("a", None).unwrap();
    assert!(matches!(
        e.sn.prepare("a", None),
        Err(SnapshotError::AlreadyExists(_))
    ));
    assert!(matches!(
        e.sn.prepare("bad/key", None),
        Err(SnapshotError::BadKey(_))
    ));
    assert!(matches!(
        e.sn.prepare("b", Some("a")),
        Err(SnapshotError::WrongKind { .. })
    ));
    assert!(matches!(
        e.sn.prepare("b", Some("nope")),
        Err(SnapshotError::NotFound(_))
    ));
    e.sn.commit("A", "a").unwrap();
    assert!(matches!(e.sn.stat("a"), Err(SnapshotError::NotFound(_))));
    e.sn.view("v", Some("A")).unwrap();
    assert!(matches!(
        e.sn.commit("V", "v"),
        Err(SnapshotError::WrongKind { .. })
    ));
    assert!(matches!(
        e.sn.write_target("v"),
        Err(SnapshotError::WrongKind { .. })
    ));
    e.sn.prepare("c", Some("A")).unwrap();
    let mut all = e.sn.walk().unwrap();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let summary: Vec<_> = all
        .iter()
        .map(|i| (i.key.as_str(), i.kind, i.parent.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("A", Kind::Committed, None),
            ("c", Kind::Active, Some("A")),
            ("v", Kind::View, Some("A"))
        ]
    );
    // A snapshot with children cannot go; without, it can.
    let err = e.sn.remove("A").unwrap_err();
    assert!(matches!(err, SnapshotError::HasChildren(..)), "{err}");
    e.sn.remove("c").unwrap();
    e.sn.remove("v").unwrap();
    e.sn.remove("A").unwrap();
    assert!(e.sn.walk().unwrap().is_empty());
    assert!(matches!(e.sn.remove("A"), Err(SnapshotError::NotFound(_))));
}

pub fn usage_counts_content(driver: &str) {
    let e = env(driver);
    e.sn.prepare("a", None).unwrap();
    let t = e.sn.write_target("a").unwrap();
    fs::write(t.dir.join("big"), vec![1u8; 200_000]).unwrap();
    fs::create_dir(t.dir.join("d")).unwrap();
    let u = e.sn.usage("a").unwrap();
    assert!(u.size >= 200_000, "{u:?}");
    assert_eq!(u.inodes, 2);
}

pub fn long_layer_chains_mount(driver: &str) {
    if !needs_root() {
        return;
    }
    let e = env(driver);
    let n = 120;
    let mut parent: Option<String> = None;
    for i in 0..n {
        let name = format!("layer-{i:03}-{}", "x".repeat(40));
        e.layer(
            &name,
            parent.as_deref(),
            &Tar::new().file(&format!("f{i}"), b"x").finish(),
        );
        parent = Some(name);
    }
    let mounts = e.sn.prepare("top", parent.as_deref()).unwrap();
    if driver == "overlay" {
        let opts = mounts[0].options.join(",");
        assert!(
            opts.len() > 4096,
            "the test must exceed one page of options ({})",
            opts.len()
        );
    }
    let m = e.mount(&mounts, "top");
    for i in 0..n {
        assert!(m.0.join(format!("f{i}")).exists(), "f{i} from layer {i}");
    }
}

macro_rules! suite {
    ($m:ident, $driver:expr) => {
        mod $m {
            #[test]
            fn layers_stack_and_never_change() {
                super::layers_stack_and_never_change($driver)
            }
            #[test]
            fn whiteouts_from_layers() {
                super::whiteouts_from_layers($driver)
            }
            #[test]
            fn kinds_and_errors() {
                super::kinds_and_errors($driver)
            }
            #[test]
            fn usage_counts_content() {
                super::usage_counts_content($driver)
            }
            #[test]
            fn long_layer_chains_mount() {
                super::long_layer_chains_mount($driver)
            }
        }
    };
}

suite!(overlay, "overlay");
suite!(vfs, "vfs");

#[test]
fn overlay_delete_leaves_whiteout_in_upperdir() {
    if !needs_root() {
        return;
    }
    let e = env("overlay");
    e.layer("A", None, &Tar::new().file("doomed", b"d").finish());
    let mounts = e.sn.prepare("c", Some("A")).unwrap();
    {
        let m = e.mount(&mounts, "c");
        fs::remove_file(m.0.join("doomed")).unwrap();
    }
    let upper = e.sn.write_target("c").unwrap().dir;
    let wh = fs::symlink_metadata(upper.join("doomed")).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "overlay whiteout in upperdir"
    );
    let gd = e.sn.graph_driver("c").unwrap();
    let lower = gd.data.get("LowerDir").unwrap();
    assert_eq!(
        read(&Path::new(lower).join("doomed")),
        "d",
        "the layer keeps the file"
    );
    assert!(
        gd.data.contains_key("UpperDir")
            && gd.data.contains_key("WorkDir")
            && gd.data.contains_key("MergedDir")
    );
}

#[test]
fn unknown_driver_names_the_choices() {
    let tmp = tempfile::tempdir().unwrap();
    let err = open("btrfs", tmp.path()).err().unwrap().to_string();
    assert!(err.contains("overlay") && err.contains("vfs"), "{err}");
}

#[test]
fn overlay_unavailable_names_the_fallback() {
    let msg = SnapshotError::OverlayUnavailable("mount returned ENODEV".into()).to_string();
    assert!(
        msg.contains("--storage-driver vfs") && msg.contains("ENODEV"),
        "{msg}"
    );
}

#[test]
fn overlay_long_chain_with_relative_paths() {
    if !needs_root() {
        return;
    }
    let e = env("overlay");
    let mut parent: Option<String> = None;
    for i in 0..120 {
        let name = format!("layer-{i:03}-{}", "y".repeat(40));
        e.layer(
            &name,
            parent.as_deref(),
            &Tar::new().file(&format!("g{i}"), b"y").finish(),
        );
        parent = Some(name);
    }
    let mounts = e.sn.prepare("top", parent.as_deref()).unwrap();
    let target = e.tmp.path().join("mnt-rel");
    fs::create_dir_all(&target).unwrap();
    // The fallback of kernels without `lowerdir+`, called directly.
    mount::mount_overlay_relative(&mounts[0], &target).unwrap();
    let m = MountGuard(target);
    for i in 0..120 {
        assert!(m.0.join(format!("g{i}")).exists(), "g{i}");
    }
    fs::write(m.0.join("new"), "x").unwrap();
    assert!(
        e.sn.write_target("top").unwrap().dir.join("new").exists(),
        "writes go to the upperdir"
    );
}
