//! Pulls and pushes against a real registry (docker-registry) filled by skopeo from OCI
//! layouts built here, and against a fake server for what a real one would not do.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::layout::layer;
use common::{Comp, Layout, Registry, have_tools, skopeo_copy};
use peapod_image::reference::Reference;
use peapod_image::registry::progress::ProgressMode;
use peapod_image::registry::pull::PullOptions;
use peapod_image::registry::push::PushOptions;
use peapod_image::registry::{ClientOptions, RegistryError};
use peapod_image::{ImageError, ImageService};

fn opts(host: &str) -> PullOptions {
    PullOptions {
        client: ClientOptions {
            insecure: vec![host.to_string()],
            credentials: None,
        },
        progress: ProgressMode::Quiet,
        ..PullOptions::default()
    }
}

fn service(dir: &Path) -> ImageService {
    ImageService::open(dir, "vfs").unwrap()
}

/// The unpacked root filesystem of an image (vfs: the top snapshot is a full tree).
fn rootfs(svc: &ImageService, name: &str) -> PathBuf {
    let img = svc.load(name).unwrap();
    let top = img.chain_ids().last().unwrap().to_string();
    PathBuf::from(&svc.snapshots().graph_driver(&top).unwrap().data["Dir"])
}

fn tools() -> bool {
    have_tools(&["docker-registry", "skopeo", "htpasswd"])
}

#[test]
fn pull_by_tag_and_by_digest() {
    if !tools() {
        return;
    }
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let base = layer(
        &[
            ("etc/", b""),
            ("etc/os-release", b"ID=test\n"),
            ("tmp/old", b"x"),
        ],
        Comp::Gzip,
    );
    let top = layer(&[("tmp/.wh.old", b""), ("app/hello", b"hi\n")], Comp::Gzip);
    let m = layout.image(&[base, top], "amd64", &["/app/hello"]);
    layout.tag("v1", &m);
    skopeo_copy(
        &layout.dir,
        "v1",
        &format!("{}/test/app:v1", reg.host()),
        None,
    );

    let svc = service(&tmp.path().join("root"));
    let name = format!("{}/test/app:v1", reg.host());
    let img = svc
        .pull(&Reference::parse(&name).unwrap(), &opts(&reg.host()))
        .unwrap();
    assert_eq!(
        img.record.target.digest.to_string(),
        m["digest"].as_str().unwrap()
    );
    assert_eq!(img.manifest.layers.len(), 2);
    assert_eq!(
        img.config.config.as_ref().unwrap().cmd.as_deref(),
        Some(&["/app/hello".to_string()][..])
    );
    let root = rootfs(&svc, &name);
    assert_eq!(
        fs::read_to_string(root.join("etc/os-release")).unwrap(),
        "ID=test\n"
    );
    assert_eq!(fs::read_to_string(root.join("app/hello")).unwrap(), "hi\n");
    assert!(!root.join("tmp/old").exists(), "the whiteout removed it");

    // By digest, into a fresh root.
    let svc2 = service(&tmp.path().join("root2"));
    let by_digest = format!("{}/test/app@{}", reg.host(), m["digest"].as_str().unwrap());
    let img2 = svc2
        .pull(&Reference::parse(&by_digest).unwrap(), &opts(&reg.host()))
        .unwrap();
    assert_eq!(img2.id(), img.id());
    assert_eq!(
        svc2.resolve(&by_digest).unwrap().name,
        Reference::parse(&by_digest).unwrap().to_string()
    );

    // An unknown tag: a clear error, nothing named.
    let missing = format!("{}/test/app:nope", reg.host());
    let err = svc2
        .pull(&Reference::parse(&missing).unwrap(), &opts(&reg.host()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not found") && err.contains("test/app:nope"),
        "{err}"
    );
    assert!(svc2.resolve(&missing).is_err());
}

#[test]
fn multi_arch_index_selects_the_platform() {
    if !tools() {
        return;
    }
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let amd = layout.image(
        &[layer(&[("arch", b"amd64")], Comp::Gzip)],
        "amd64",
        &["sh"],
    );
    let arm = layout.image(
        &[layer(&[("arch", b"arm64")], Comp::Gzip)],
        "arm64",
        &["sh"],
    );
    let index = layout.index(&[amd.clone(), arm.clone()]);
    layout.tag("multi", &index);
    skopeo_copy(
        &layout.dir,
        "multi",
        &format!("{}/test/multi:1", reg.host()),
        None,
    );
    let name = format!("{}/test/multi:1", reg.host());
    let reference = Reference::parse(&name).unwrap();

    let svc = service(&tmp.path().join("amd"));
    let mut o = opts(&reg.host());
    o.platform = "linux/amd64".parse().unwrap();
    let img = svc.pull(&reference, &o).unwrap();
    assert_eq!(
        img.record.target.digest.to_string(),
        amd["digest"].as_str().unwrap()
    );
    assert_eq!(
        img.record.index.as_ref().unwrap().digest.to_string(),
        index["digest"].as_str().unwrap()
    );
    assert_eq!(
        fs::read_to_string(rootfs(&svc, &name).join("arch")).unwrap(),
        "amd64"
    );

    let svc = service(&tmp.path().join("arm"));
    o.platform = "linux/arm64".parse().unwrap();
    svc.pull(&reference, &o).unwrap();
    assert_eq!(
        fs::read_to_string(rootfs(&svc, &name).join("arch")).unwrap(),
        "arm64"
    );

    o.platform = "linux/s390x".parse().unwrap();
    let err = svc.pull(&reference, &o).unwrap_err().to_string();
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64") && err.contains("--platform"),
        "{err}"
    );
}

#[test]
fn gzip_zstd_and_plain_layers() {
    if !tools() {
        return;
    }
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let m = layout.image(
        &[
            layer(&[("a", b"gzip")], Comp::Gzip),
            layer(&[("b", b"zstd")], Comp::Zstd),
            layer(&[("c", b"plain")], Comp::None),
        ],
        "amd64",
        &["sh"],
    );
    layout.tag("mixed", &m);
    skopeo_copy(
        &layout.dir,
        "mixed",
        &format!("{}/test/mixed:1", reg.host()),
        None,
    );
    let name = format!("{}/test/mixed:1", reg.host());
    let svc = service(&tmp.path().join("root"));
    svc.pull(&Reference::parse(&name).unwrap(), &opts(&reg.host()))
        .unwrap();
    let root = rootfs(&svc, &name);
    for (f, c) in [("a", "gzip"), ("b", "zstd"), ("c", "plain")] {
        assert_eq!(fs::read_to_string(root.join(f)).unwrap(), c);
    }
}

#[test]
fn shared_layers_are_stored_and_unpacked_once() {
    if !tools() {
        return;
    }
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let base = layer(&[("base", &[7u8; 10_000])], Comp::Gzip);
    let one = layout.image(
        &[base.clone(), layer(&[("one", b"1")], Comp::Gzip)],
        "amd64",
        &["sh"],
    );
    let two = layout.image(
        &[base, layer(&[("two", b"2")], Comp::Gzip)],
        "amd64",
        &["sh"],
    );
    layout.tag("one", &one);
    layout.tag("two", &two);
    skopeo_copy(
        &layout.dir,
        "one",
        &format!("{}/test/one:1", reg.host()),
        None,
    );
    skopeo_copy(
        &layout.dir,
        "two",
        &format!("{}/test/two:1", reg.host()),
        None,
    );
    let svc = service(&tmp.path().join("root"));
    for n in ["one", "two"] {
        let name = format!("{}/test/{n}:1", reg.host());
        svc.pull(&Reference::parse(&name).unwrap(), &opts(&reg.host()))
            .unwrap();
    }
    // 2 manifests + 2 configs + 3 distinct layers.
    assert_eq!(svc.store().list().unwrap().len(), 7);
    // base, one-on-base, two-on-base: the base layer is one snapshot shared by both.
    let snaps = svc.snapshots().walk().unwrap();
    assert_eq!(snaps.len(), 3, "{snaps:?}");
    assert_eq!(snaps.iter().filter(|s| s.parent.is_none()).count(), 1);
}

#[test]
fn auth_required_then_login() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Some(("alice", "s3cret")));
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let m = layout.image(&[layer(&[("f", b"private")], Comp::Gzip)], "amd64", &["sh"]);
    layout.tag("p", &m);
    skopeo_copy(
        &layout.dir,
        "p",
        &format!("{}/team/private:1", reg.host()),
        Some(("alice", "s3cret")),
    );
    let name = format!("{}/team/private:1", reg.host());
    let reference = Reference::parse(&name).unwrap();
    let svc = service(&tmp.path().join("root"));

    let err = svc.pull(&reference, &opts(&reg.host())).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Registry(RegistryError::AuthRequired { .. })
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("requires authentication")
            && msg.contains(&format!("peapod login {}", reg.host())),
        "{msg}"
    );
    assert!(svc.store().list().unwrap().is_empty());

    let mut o = opts(&reg.host());
    o.client.credentials = Some(("alice".into(), "wrong".into()));
    let err = svc.pull(&reference, &o).unwrap_err().to_string();
    assert!(err.contains("refused the credentials"), "{err}");

    o.client.credentials = Some(("alice".into(), "s3cret".into()));
    let img = svc.pull(&reference, &o).unwrap();
    assert_eq!(
        img.record.target.digest.to_string(),
        m["digest"].as_str().unwrap()
    );

    // Push needs the credentials too: to another repository, chunked.
    let dest = Reference::parse(&format!("{}/team/copy:2", reg.host())).unwrap();
    let push = PushOptions {
        client: o.client.clone(),
        progress: ProgressMode::Quiet,
        chunk_size: Some(7),
    };
    svc.push(&name, &dest, &push).unwrap();
    let svc2 = service(&tmp.path().join("root2"));
    let again = svc2.pull(&dest, &o).unwrap();
    assert_eq!(again.record.target.digest, img.record.target.digest);
}

#[test]
fn push_monolithic_then_pull_back() {
    if !tools() {
        return;
    }
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let m = layout.image(
        &[
            layer(&[("x", &[1u8; 300_000])], Comp::Zstd),
            layer(&[("y", b"y")], Comp::Gzip),
        ],
        "amd64",
        &["sh"],
    );
    layout.tag("src", &m);
    skopeo_copy(
        &layout.dir,
        "src",
        &format!("{}/src/img:1", reg.host()),
        None,
    );
    let svc = service(&tmp.path().join("root"));
    let src = format!("{}/src/img:1", reg.host());
    svc.pull(&Reference::parse(&src).unwrap(), &opts(&reg.host()))
        .unwrap();
    let dest = Reference::parse(&format!("{}/dst/img:pushed", reg.host())).unwrap();
    let push = PushOptions {
        client: opts(&reg.host()).client,
        progress: ProgressMode::Quiet,
        chunk_size: None,
    };
    let digest = svc.push(&src, &dest, &push).unwrap();
    assert_eq!(digest.to_string(), m["digest"].as_str().unwrap());
    // Pushing again finds every blob there already.
    svc.push(&src, &dest, &push).unwrap();
    let svc2 = service(&tmp.path().join("root2"));
    let img = svc2.pull(&dest, &opts(&reg.host())).unwrap();
    assert_eq!(
        fs::read(rootfs(&svc2, &dest.to_string()).join("x"))
            .unwrap()
            .len(),
        300_000
    );
    assert_eq!(img.record.target.digest, digest);
}

#[test]
fn overlay_pull_stages_layers_and_mounts() {
    if !tools() || !common::is_root() {
        eprintln!("skipped: needs root and the registry tools");
        return;
    }
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let layers: Vec<_> = (0..5)
        .map(|i| {
            layer(
                &[
                    (&format!("l{i}") as &str, b"x"),
                    ("shared", format!("{i}").as_bytes()),
                ],
                Comp::Gzip,
            )
        })
        .chain([layer(&[(".wh.l0", b"")], Comp::Zstd)])
        .collect();
    let m = layout.image(&layers, "amd64", &["sh"]);
    layout.tag("ov", &m);
    skopeo_copy(
        &layout.dir,
        "ov",
        &format!("{}/test/ov:1", reg.host()),
        None,
    );
    let name = format!("{}/test/ov:1", reg.host());
    let svc = ImageService::open(&tmp.path().join("root"), "overlay").unwrap();
    let img = svc
        .pull(&Reference::parse(&name).unwrap(), &opts(&reg.host()))
        .unwrap();
    let chain = img.chain_ids();
    for (i, c) in chain.iter().enumerate() {
        let info = svc.snapshots().stat(&c.to_string()).unwrap();
        assert_eq!(
            info.parent,
            (i > 0).then(|| chain[i - 1].to_string()),
            "layer {i} sits on the one under it"
        );
    }
    let staging = tmp.path().join("root/snapshots/overlay/staging");
    assert!(
        fs::read_dir(&staging)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "staging is empty"
    );
    let top = svc.snapshots().graph_driver(&chain[5].to_string()).unwrap();
    let wh = fs::symlink_metadata(Path::new(&top.data["UpperDir"]).join("l0")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "an overlay whiteout"
    );

    // A container's view: mount it in a private mount namespace of this thread.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
    let mounts = svc.prepare_rootfs(&img, "ctr").unwrap();
    let target = tmp.path().join("merged");
    fs::create_dir(&target).unwrap();
    peapod_image::snapshot::mount::mount_all(&mounts, &target).unwrap();
    // Unmounts on drop, before the temp dir (declared earlier) is removed.
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = peapod_image::snapshot::mount::unmount(self.0);
        }
    }
    let _guard = Unmount(&target);
    assert!(!target.join("l0").exists(), "whited out");
    assert_eq!(
        fs::read_to_string(target.join("shared")).unwrap(),
        "4",
        "the top layer wins"
    );
    assert!(target.join("l4").exists());
}

#[test]
fn docker_registry_honours_range_for_resumed_blobs() {
    if !tools() {
        return;
    }
    let reg = Registry::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let mut x: u32 = 7;
    let noise: Vec<u8> = (0..120_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let big = layer(&[("noise", &noise)], Comp::None);
    let m = layout.image(std::slice::from_ref(&big), "amd64", &["sh"]);
    layout.tag("r", &m);
    let name = format!("{}/test/resume:1", reg.host());
    skopeo_copy(&layout.dir, "r", &name, None);
    let reference = Reference::parse(&name).unwrap();
    let digest: peapod_image::digest::Digest = common::sha256(&big.blob).parse().unwrap();
    let half = big.blob.len() / 2;

    // A wrong first half left by "an earlier pull": the registry serves only the rest
    // (a Range request), so the digest over the whole blob catches it.
    let svc = service(&tmp.path().join("root"));
    let partial = svc.store().partial_path(&digest);
    let mut wrong = big.blob[..half].to_vec();
    wrong[0] ^= 0xff;
    fs::write(&partial, &wrong).unwrap();
    let msg = svc
        .pull(&reference, &opts(&reg.host()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&format!("resumed at byte {half}")) && msg.contains("nothing was stored"),
        "{msg}"
    );
    assert!(!partial.exists() && !svc.store().exists(&digest));

    // The right first half: completed with the rest.
    fs::write(&partial, &big.blob[..half]).unwrap();
    svc.pull(&reference, &opts(&reg.host())).unwrap();
    assert_eq!(svc.store().read(&digest).unwrap(), big.blob);
    assert!(!partial.exists());
}
