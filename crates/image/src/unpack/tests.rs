use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use super::*;
use crate::testutil::{Tar, is_root};

fn unpack_into(dir: &Path, tar: &[u8], mode: Whiteouts) -> UnpackStats {
    unpack(tar, dir, mode).unwrap()
}

#[test]
fn files_dirs_links_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let tar = Tar::new()
        .dir("etc")
        .file_with("etc/passwd", b"root:x:0:0\n", 0o640, 12, 34, 1_500_000_000)
        .file_with("bin/su", b"ELF", 0o4755, 0, 0, 1_500_000_001)
        .symlink("etc/link", "passwd")
        .symlink("abs", "/etc/passwd")
        .hardlink("etc/hard", "etc/passwd")
        .finish();
    let stats = unpack_into(d, &tar, Whiteouts::Overlay);
    assert_eq!(stats.file_bytes, 14);
    assert_eq!(fs::read(d.join("etc/passwd")).unwrap(), b"root:x:0:0\n");
    let m = fs::metadata(d.join("etc/passwd")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o640);
    assert_eq!(m.mtime(), 1_500_000_000);
    if is_root() {
        assert_eq!((m.uid(), m.gid()), (12, 34));
    }
    assert_eq!(m.nlink(), 2, "hardlink shares the inode");
    assert_eq!(fs::metadata(d.join("etc/hard")).unwrap().ino(), m.ino());
    assert_eq!(
        fs::metadata(d.join("bin/su")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        fs::read_link(d.join("etc/link")).unwrap(),
        Path::new("passwd")
    );
    assert_eq!(
        fs::read_link(d.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    // The implicitly created parent "bin" exists as a directory.
    assert!(fs::metadata(d.join("bin")).unwrap().is_dir());
}

#[test]
fn directory_times_survive_children() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = Tar::new();
    t.dir("d");
    t.file("d/f", b"x");
    let tar = t.finish();
    unpack_into(tmp.path(), &tar, Whiteouts::Overlay);
    assert_eq!(
        fs::metadata(tmp.path().join("d")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(
        fs::metadata(tmp.path().join("d"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
}

#[test]
fn devices_and_fifos() {
    if !is_root() {
        eprintln!("skipped: mknod of devices needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .device(tar::EntryType::Char, "dev/null", 1, 3)
        .device(tar::EntryType::Block, "dev/loop9", 7, 9)
        .device(tar::EntryType::Fifo, "run/fifo", 0, 0)
        .finish();
    unpack_into(tmp.path(), &tar, Whiteouts::Overlay);
    let null = fs::symlink_metadata(tmp.path().join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert!(
        fs::symlink_metadata(tmp.path().join("dev/loop9"))
            .unwrap()
            .file_type()
            .is_block_device()
    );
    assert!(
        fs::symlink_metadata(tmp.path().join("run/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn xattrs_are_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .xattr_file("f", b"data", "user.peapod", b"yes")
        .finish();
    unpack_into(tmp.path(), &tar, Whiteouts::Overlay);
    let mut buf = [0u8; 16];
    let path = std::ffi::CString::new(tmp.path().join("f").to_str().unwrap()).unwrap();
    let key = c"user.peapod";
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            key.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 && nix::errno::Errno::last() == nix::errno::Errno::EOPNOTSUPP {
        eprintln!("skipped: the temp filesystem has no user xattrs");
        return;
    }
    assert_eq!(&buf[..n as usize], b"yes");
}

#[test]
fn overlay_whiteouts() {
    if !is_root() {
        eprintln!("skipped: overlay whiteouts (0/0 devices, trusted xattrs) need root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .file("a/.wh.gone", b"")
        .dir("opq")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/kept", b"k")
        .finish();
    unpack_into(tmp.path(), &tar, Whiteouts::Overlay);
    let wh = fs::symlink_metadata(tmp.path().join("a/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!tmp.path().join("a/.wh.gone").exists());
    assert!(!tmp.path().join("opq/.wh..wh..opq").exists());
    let path = std::ffi::CString::new(tmp.path().join("opq").to_str().unwrap()).unwrap();
    let mut buf = [0u8; 4];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(n, 1);
    assert_eq!(buf[0], b'y');
}

#[test]
fn applied_whiteouts_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let lower = Tar::new()
        .file("keep", b"1")
        .file("gone", b"2")
        .file("dir/old1", b"3")
        .file("dir/sub/old2", b"4")
        .file("tree/x/y", b"5")
        .finish();
    unpack_into(d, &lower, Whiteouts::Apply);
    let upper = Tar::new()
        .file(".wh.gone", b"")
        .file(".wh.tree", b"")
        .dir("dir")
        .file("dir/.wh..wh..opq", b"")
        .file("dir/new", b"6")
        .finish();
    unpack_into(d, &upper, Whiteouts::Apply);
    assert!(d.join("keep").exists());
    assert!(!d.join("gone").exists());
    assert!(!d.join("tree").exists());
    let mut names: Vec<_> = fs::read_dir(d.join("dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec![std::ffi::OsString::from("new")]);
}

#[test]
fn later_entries_replace_earlier_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .file("x", b"first")
        .file("x", b"second")
        .dir("y")
        .file("y/inner", b"i")
        .file("y", b"now a file")
        .finish();
    unpack_into(tmp.path(), &tar, Whiteouts::Apply);
    assert_eq!(fs::read(tmp.path().join("x")).unwrap(), b"second");
    assert_eq!(fs::read(tmp.path().join("y")).unwrap(), b"now a file");
}

#[test]
fn truncated_tar_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new().file("big", &[7u8; 4096]).finish();
    let err = unpack(&tar[..1024], tmp.path(), Whiteouts::Apply).unwrap_err();
    assert!(
        matches!(err, UnpackError::Write { .. } | UnpackError::Read(_)),
        "{err}"
    );
}
