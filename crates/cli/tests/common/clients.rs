//! For the tests in which real container clients (containerd's `ctr`,
//! Podman) drive the runtime under test: an OCI image archive of the busybox
//! rootfs, bounded client invocations, and the host cleanup a killed client
//! needs (its processes, its mounts, its cgroup trees).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Out, Runtime, cgroup_dirs_named, mounts_under, pids_in_cgroup_named, proc_alive};

/// Bound for one client invocation (a `podman pod create` builds the pause image first).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

static N: AtomicUsize = AtomicUsize::new(0);

/// A process-unique suffix for names (namespaces, cgroup parents, container ids).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The path of program `name` on PATH; panics naming the package list when
/// it is missing (these tests must run wherever the project's setup ran).
#[track_caller]
pub fn require_program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: install the packages of scripts/lib/common.sh \
                 (sudo bash scripts/setup.sh --deps-only)"
            )
        })
}

/// Runs `cmd` (stdin /dev/null, output to files under `io_dir`) for at most
/// `timeout`; a command still running then is killed and reported by a
/// `[timed out]` line appended to its stderr.
pub fn run_bounded(mut cmd: Command, io_dir: &Path, timeout: Duration) -> Out {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out_path = io_dir.join(format!("client-{n}.out"));
    let err_path = io_dir.join(format!("client-{n}.err"));
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break (st, false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = fs::read_to_string(&err_path).unwrap_or_default();
    if timed_out {
        stderr.push_str(&format!("\n[timed out after {timeout:?}]"));
    }
    Out {
        args: vec![shown],
        status,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr,
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `data` as a blob of the OCI layout at `layout`; returns its descriptor.
fn write_blob(layout: &Path, media_type: &str, data: &[u8]) -> Value {
    let hex = sha256_hex(data);
    fs::write(layout.join("blobs/sha256").join(&hex), data).unwrap();
    json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": data.len()})
}

#[track_caller]
fn tar(io_dir: &Path, args: &[&str]) {
    let mut cmd = Command::new(require_program("tar"));
    cmd.args(args);
    run_bounded(cmd, io_dir, CLIENT_TIMEOUT).ok();
}

/// An OCI image archive ("oci-archive": an OCI image layout in a tar) of one
/// uncompressed layer holding the busybox rootfs of the test harness, named
/// `name` (a full reference such as `localhost/pea-busybox:latest`, given as
/// both `io.containerd.image.name`, which `ctr images import` reads, and
/// `org.opencontainers.image.ref.name`, which `podman load` reads).
/// `customize` may add files to the rootfs first; the rootfs shares files
/// with other bundles through hard links, so it must replace files, never
/// write into existing ones.
pub fn busybox_oci_archive(rt: &Runtime, name: &str, customize: impl FnOnce(&Path)) -> PathBuf {
    let bundle = rt.bundle();
    let rootfs = bundle.rootfs();
    customize(&rootfs);
    let dir = rt.host_dir("oci-image");
    let layout = dir.join("layout");
    fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer_tar = dir.join("layer.tar");
    tar(
        &dir,
        &[
            "--create",
            "--file",
            layer_tar.to_str().unwrap(),
            "--numeric-owner",
            "--sort=name",
            "--directory",
            rootfs.to_str().unwrap(),
            ".",
        ],
    );
    let layer_data = fs::read(&layer_tar).unwrap();
    let layer = write_blob(
        &layout,
        "application/vnd.oci.image.layer.v1.tar",
        &layer_data,
    );
    let config = json!({
        "architecture": oci_arch(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        "history": [{"created_by": "pea integration tests: busybox rootfs"}]
    });
    let config = write_blob(
        &layout,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer]
    });
    let mut manifest = write_blob(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    manifest["platform"] = json!({"architecture": oci_arch(), "os": "linux"});
    manifest["annotations"] = json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name
    });
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest]
    });
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let archive = dir.join("image.tar");
    tar(
        &dir,
        &[
            "--create",
            "--file",
            archive.to_str().unwrap(),
            "--directory",
            layout.to_str().unwrap(),
            "oci-layout",
            "index.json",
            "blobs",
        ],
    );
    fs::remove_file(&layer_tar).unwrap();
    archive
}

/// The OCI name of this machine's architecture.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Live processes (not this one) whose command line contains `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me || !proc_alive(pid) {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.contains(needle) {
            out.push(pid);
        }
    }
    out
}

fn sigkill_all(pids: &[i32]) {
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// SIGKILLs every live process whose command line contains `needle` (a
/// path unique to the test, so only the test's own daemons match) and
/// waits (bounded) until they are gone.
pub fn kill_processes_mentioning(needle: &str) {
    let gone = super::wait_for(Duration::from_secs(5), || {
        let pids = pids_mentioning(needle);
        sigkill_all(&pids);
        pids.is_empty()
    });
    if !gone {
        eprintln!(
            "processes mentioning {needle} survive SIGKILL: {:?}",
            pids_mentioning(needle)
        );
    }
}

/// SIGKILLs (until none is left, bounded) every process in a cgroup that has
/// a path component `name`.
pub fn kill_cgroup_members(name: &str) {
    super::wait_for(Duration::from_secs(5), || {
        let pids = pids_in_cgroup_named(name);
        sigkill_all(&pids);
        pids.is_empty()
    });
}

/// Removes every cgroup directory named `name` with its sub-cgroups, deepest
/// first (members must be gone); returns what could not be removed.
pub fn remove_cgroup_trees(name: &str) -> Vec<String> {
    fn subdirs(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                subdirs(&e.path(), out);
            }
        }
        out.push(dir.to_path_buf());
    }
    let mut problems = Vec::new();
    for top in cgroup_dirs_named(name) {
        let mut all = Vec::new();
        subdirs(&top, &mut all);
        for d in all {
            let ok = super::wait_for(Duration::from_secs(2), || {
                fs::remove_dir(&d).is_ok() || !d.exists()
            });
            if !ok {
                problems.push(format!("cannot remove cgroup {}", d.display()));
            }
        }
    }
    problems
}

/// Lazily unmounts everything mounted at or under `dir`, deepest first, so
/// the tree can be removed (never remove a tree that still holds mounts).
pub fn unmount_under(dir: &Path) {
    for _ in 0..5 {
        let mut mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The runtime's default state root (what a client that passes no --root
/// makes it use): runc's, or pea's `/run/pea`.
pub fn runtime_default_root() -> PathBuf {
    if super::runtime_is_runc() {
        PathBuf::from("/run/runc")
    } else {
        PathBuf::from("/run/pea")
    }
}
