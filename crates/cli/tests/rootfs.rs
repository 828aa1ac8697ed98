//! Root filesystem setup: masked and read-only paths, read-only root, bind mounts,
//! symlinks in the rootfs, default devices.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use common::{Runtime, host_mounts_mentioning, mounts_under, wait_file_contains};

#[test]
fn masked_paths_hide_content() {
    let rt = Runtime::new("rootfs-masked");
    let mut b = rt.bundle();
    b.sh("for f in /proc/kcore /proc/timer_list /proc/keys; do \
            echo \"$f $(head -c 1 $f 2>/dev/null | wc -c)\"; done; \
          echo \"/sys/firmware $(ls -A /sys/firmware | wc -l)\"");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            "/proc/kcore 0",
            "/proc/timer_list 0",
            "/proc/keys 0",
            "/sys/firmware 0"
        ],
        "{out:?}"
    );
}

/// Mount options (6th field) of the mount at `mp` in a mountinfo listing.
fn mount_opts<'a>(mountinfo: &'a str, mp: &str) -> Option<&'a str> {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mp))
        .and_then(|l| l.split(' ').nth(5))
}

#[test]
fn readonly_paths_refuse_writes() {
    let rt = Runtime::new("rootfs-ropaths");
    let mut b = rt.bundle();
    b.sh(
        "if echo changed > /proc/sys/kernel/hostname; then echo WRITABLE; else echo refused; fi; \
          hostname; echo --; cat /proc/self/mountinfo",
    );
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    let lines = out.lines();
    assert_eq!(lines[0], "refused", "{out:?}");
    assert_eq!(lines[1], b.hostname(), "{out:?}");
    let (_, mountinfo) = out.stdout.split_once("--\n").unwrap();
    let opts = mount_opts(mountinfo, "/proc/sys").expect("/proc/sys is not a mount");
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "/proc/sys options: {opts}"
    );
}

#[test]
fn readonly_root() {
    let rt = Runtime::new("rootfs-ro");
    let script = "if touch /newfile 2>/dev/null; then echo wrote; else echo refused; fi";
    let mut b = rt.bundle();
    b.readonly_root(true).sh(script);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["refused"], "{out:?}");
    assert!(!b.rootfs().join("newfile").exists());

    // Control: the same script on a writable root writes into the bundle's rootfs.
    let mut b = rt.bundle();
    b.readonly_root(false).sh(script);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["wrote"], "{out:?}");
    assert!(b.rootfs().join("newfile").exists());
}

/// Removes an (empty, unmounted) directory the test must not have caused to exist.
struct RmdirGuard(PathBuf);

impl Drop for RmdirGuard {
    fn drop(&mut self) {
        if self.0.exists() && mounts_under(&self.0).is_empty() {
            let _ = fs::remove_dir(&self.0);
        }
    }
}

#[test]
fn rootfs_symlinks_cannot_redirect_mounts_to_host() {
    let rt = Runtime::new("rootfs-symlink");
    let out = rt.host_dir("out");
    let victim = rt.host_dir("victim");
    let id = rt.id();
    let escape = format!("pea-escape-{id}");
    let _guard = RmdirGuard(PathBuf::from("/").join(&escape));
    let (src1, src2) = (format!("peaevil1-{id}"), format!("peaevil2-{id}"));

    let mut b = rt.bundle();
    symlink(&victim, b.rootfs().join("evil")).unwrap();
    symlink("/", b.rootfs().join("evil2")).unwrap();
    b.mount("/evil/x", "tmpfs", &src1, &["size=1m"])
        .mount(&format!("/evil2/{escape}"), "tmpfs", &src2, &["size=1m"])
        .bind(&out, "/out", false)
        .sh(
            "grep peaevil /proc/self/mountinfo > /out/inside; echo ready > /out/ready; \
             trap 'exit 0' TERM; sleep 100000 & wait",
        );
    rt.create(&b, &id).ok();
    rt.start(&id).ok();
    wait_file_contains(&out.join("ready"), "ready");

    // Nothing happened on the host side of the symlinks.
    let entries: Vec<_> = fs::read_dir(&victim)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        entries.is_empty(),
        "host dir behind the symlink was touched: {entries:?}"
    );
    assert!(
        !PathBuf::from("/").join(&escape).exists(),
        "/{escape} created on the host"
    );
    for src in [&src1, &src2] {
        let m = host_mounts_mentioning(src);
        assert!(m.is_empty(), "mount landed on the host: {m:?}");
    }
    let m = mounts_under(rt.base());
    assert!(m.is_empty(), "host mounts under the test dir: {m:?}");

    // Both mounts exist inside the container, at the symlinks resolved inside the rootfs.
    let inside = fs::read_to_string(out.join("inside")).unwrap();
    let mp_of = |src: &str| {
        inside
            .lines()
            .find(|l| l.contains(src))
            .and_then(|l| l.split(' ').nth(4))
            .map(str::to_string)
    };
    assert_eq!(
        mp_of(&src1),
        Some(victim.join("x").to_string_lossy().into_owned()),
        "{inside}"
    );
    assert_eq!(mp_of(&src2), Some(format!("/{escape}")), "{inside}");

    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn bind_mounts_ro_and_rw() {
    let rt = Runtime::new("rootfs-bind");
    let ro = rt.host_dir("ro");
    let rw = rt.host_dir("rw");
    fs::write(ro.join("data.txt"), "host-data\n").unwrap();
    let mut b = rt.bundle();
    b.bind(&ro, "/mnt/ro", true)
        .bind(&rw, "/mnt/rw", false)
        .sh("cat /mnt/ro/data.txt; \
         if touch /mnt/ro/new 2>/dev/null; then echo WRITABLE; else echo refused; fi; \
         echo from-container > /mnt/rw/f && echo wrote");
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.lines(), ["host-data", "refused", "wrote"], "{out:?}");
    assert!(!ro.join("new").exists());
    assert_eq!(
        fs::read_to_string(rw.join("f")).unwrap(),
        "from-container\n"
    );
}

#[test]
fn default_devices() {
    let rt = Runtime::new("rootfs-dev");
    let mut b = rt.bundle();
    b.sh(r#"
for d in null zero full random urandom tty; do echo "$d $(stat -L -c '%F %t:%T' /dev/$d)"; done
test -c /dev/ptmx && echo "ptmx ok"
for l in fd stdin stdout stderr; do echo "$l -> $(readlink /dev/$l)"; done
for d in shm pts mqueue; do test -d /dev/$d && echo "$d dir"; done
for d in kmsg mem sda vda; do test -e /dev/$d && echo "$d UNEXPECTED"; done
echo "zero $(head -c 4 /dev/zero | wc -c)"
echo x > /dev/null && echo "null writable"
if echo x > /dev/full 2>/dev/null; then echo "full wrote"; else echo "full ENOSPC"; fi
true
"#);
    let id = rt.id();
    let out = rt.run(&b, &id).ok();
    assert_eq!(
        out.lines(),
        [
            "null character special file 1:3",
            "zero character special file 1:5",
            "full character special file 1:7",
            "random character special file 1:8",
            "urandom character special file 1:9",
            "tty character special file 5:0",
            "ptmx ok",
            "fd -> /proc/self/fd",
            "stdin -> /proc/self/fd/0",
            "stdout -> /proc/self/fd/1",
            "stderr -> /proc/self/fd/2",
            "shm dir",
            "pts dir",
            "mqueue dir",
            "zero 4",
            "null writable",
            "full ENOSPC",
        ],
        "{out:?}"
    );
}
