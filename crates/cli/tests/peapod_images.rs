//! The `peapod` image commands driven like a user: build-from-host, images, inspect, tag,
//! rm, prune, export/import, login/logout, push and pull against a real registry, and the
//! one-line errors of bad input. Each test has its own --root.

#[path = "../../image/tests/common/registry.rs"]
mod registry;

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_peapod");

fn peapod(root: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("PEAPOD_ROOT")
        .output()
        .expect("run peapod")
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = peapod(root, args);
    assert!(
        out.status.success(),
        "peapod {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail: exit code and its one stderr line.
fn fails(root: &Path, args: &[&str]) -> (i32, String) {
    let out = peapod(root, args);
    assert!(!out.status.success(), "peapod {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line of error, got: {err}"
    );
    (out.status.code().unwrap(), err.trim_end().to_string())
}

fn have(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        eprintln!("skipped: {tool} is not installed (bash scripts/test.sh installs it)");
    }
    found
}

fn busybox(root: &Path) -> bool {
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox is not installed (busybox-static)");
        return false;
    }
    ok(
        root,
        &[
            "--storage-driver",
            "vfs",
            "image",
            "build-from-host",
            "busybox",
            "/bin/busybox",
        ],
    );
    true
}

#[test]
fn build_list_inspect_tag_rm_prune() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    if !busybox(root) {
        return;
    }
    let table = ok(root, &["images"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("busybox") && row.contains("latest"),
        "{row}"
    );

    ok(root, &["tag", "busybox", "example.com/tools/bb:1.0"]);
    let json: serde_json::Value =
        serde_json::from_str(&ok(root, &["images", "--format", "json"])).unwrap();
    let repos: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Repository"].as_str().unwrap())
        .collect();
    assert_eq!(repos, ["busybox", "example.com/tools/bb"]);
    assert_eq!(json[0]["Id"], json[1]["Id"]);

    let inspect = ok(
        root,
        &["--storage-driver", "vfs", "image", "inspect", "busybox"],
    );
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let i = &inspect[0];
    assert_eq!(i["Config"]["Cmd"][0], "sh");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert_eq!(i["RepoTags"].as_array().unwrap().len(), 2);
    assert_eq!(i["GraphDriver"]["Name"], "vfs");

    let out = ok(root, &["image", "rm", "busybox"]);
    assert!(
        out.contains("Untagged: docker.io/library/busybox:latest"),
        "{out}"
    );
    assert!(
        out.contains("Removed 0 blobs"),
        "the other name keeps the content: {out}"
    );
    ok(root, &["image", "rm", "example.com/tools/bb:1.0"]);
    assert_eq!(ok(root, &["images", "-q"]), "");
    let out = ok(root, &["image", "prune"]);
    assert!(out.contains("Removed 0 blobs"), "{out}");
}

#[test]
fn bad_input_gives_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (code, err) = fails(root, &["image", "inspect", "nosuch:1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("\"nosuch:1\" not found") && err.contains("peapod pull"),
        "{err}"
    );
    let (_, err) = fails(root, &["pull", "Not/Valid"]);
    assert!(
        err.contains("invalid image reference \"Not/Valid\""),
        "{err}"
    );
    let (code, err) = fails(root, &["images", "--nope"]);
    assert_eq!(code, 125, "a usage error exits 125, as Docker's CLI");
    assert!(
        err.contains("--nope") && err.contains("peapod --help"),
        "{err}"
    );
    let (_, err) = fails(root, &["pull", "--platform", "linux", "busybox"]);
    assert!(err.contains("invalid platform \"linux\""), "{err}");
    let (_, err) = fails(root, &["--storage-driver", "zfs", "images"]);
    assert!(
        err.contains("zfs") && err.contains("overlay or vfs"),
        "{err}"
    );
    let (_, err) = fails(root, &["image", "build-from-host", "x", "/no/such/program"]);
    assert!(err.contains("/no/such/program"), "{err}");
    let (_, err) = fails(root, &["image", "import", "/no/such/file.tar"]);
    assert!(err.contains("/no/such/file.tar"), "{err}");
    let (_, err) = fails(
        root,
        &[
            "pull",
            "--insecure-registry",
            "127.0.0.1:1",
            "127.0.0.1:1/x:1",
        ],
    );
    assert!(err.contains("cannot reach registry 127.0.0.1:1"), "{err}");
    assert_eq!(ok(root, &["images", "-q"]), "", "nothing half-made");
}

#[test]
fn export_and_import_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("a");
    if !busybox(&root) {
        return;
    }
    for (format, file) in [
        ("docker-archive", "bb.docker.tar"),
        ("oci-archive", "bb.oci.tar"),
        ("oci", "bb-layout"),
    ] {
        let path = tmp.path().join(file);
        ok(
            &root,
            &[
                "image",
                "export",
                "--format",
                format,
                "busybox",
                path.to_str().unwrap(),
            ],
        );
        let other = tmp.path().join(format!("root-{format}"));
        let out = ok(
            &other,
            &[
                "--storage-driver",
                "vfs",
                "image",
                "import",
                path.to_str().unwrap(),
            ],
        );
        assert!(
            out.contains("Loaded image: docker.io/library/busybox:latest"),
            "{format}: {out}"
        );
        assert!(ok(&other, &["images"]).contains("busybox"), "{format}");
    }
}

#[test]
fn login_push_pull_against_a_real_registry() {
    if !have("docker-registry") || !have("htpasswd") {
        return;
    }
    let reg = registry::Registry::start(Some(("bob", "hunter2")));
    let host = reg.host();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("src");
    if !busybox(&root) {
        return;
    }
    let insecure = ["--insecure-registry", host.as_str()];
    let dest = format!("{host}/lib/busybox:1");

    let mut push = vec!["push", "-q", "busybox", dest.as_str()];
    push.extend(insecure);
    let (_, err) = fails(&root, &push);
    assert!(
        err.contains("requires authentication") && err.contains(&format!("peapod login {host}")),
        "{err}"
    );

    let mut login = vec!["login", host.as_str(), "-u", "bob", "-p", "wrong"];
    login.extend(insecure);
    let (_, err) = fails(&root, &login);
    assert!(err.contains("refused the credentials"), "{err}");
    login[5] = "hunter2";
    assert!(ok(&root, &login).contains("Login Succeeded"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.join("auth.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    ok(&root, &push);
    let chunk_dest = format!("{host}/lib/busybox-chunked:1");
    let mut chunked = vec![
        "push",
        "-q",
        "--chunk-size",
        "100000",
        "busybox",
        chunk_dest.as_str(),
    ];
    chunked.extend(insecure);
    ok(&root, &chunked);

    // A second root pulls both back, with the same credentials file.
    let other = tmp.path().join("dst");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(root.join("auth.json"), other.join("auth.json")).unwrap();
    for d in [&dest, &chunk_dest] {
        let mut pull = vec!["--storage-driver", "vfs", "pull", "-q", d.as_str()];
        pull.extend(insecure);
        let id = ok(&other, &pull);
        let src_id: serde_json::Value =
            serde_json::from_str(&ok(&root, &["image", "inspect", "busybox"])).unwrap();
        assert_eq!(id.trim(), src_id[0]["Id"].as_str().unwrap());
    }
    let images = ok(&other, &["images"]);
    assert!(images.contains(&format!("{host}/lib/busybox")), "{images}");

    ok(&other, &["logout", host.as_str()]);
    let mut pull = vec!["pull", "-q", dest.as_str()];
    pull.extend(insecure);
    let (_, err) = fails(&other, &pull);
    assert!(err.contains("requires authentication"), "{err}");
}
