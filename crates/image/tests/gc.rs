//! image rm / prune: content goes when nothing uses it, and never before.

mod common;

use std::path::Path;

use common::layout::layer;
use common::{Comp, Layout};
use peapod_image::ImageService;
use peapod_image::snapshot::Kind;

fn two_images(tmp: &Path, driver: &str) -> ImageService {
    let mut l = Layout::new(&tmp.join("layout"));
    let base = layer(&[("base", &[1u8; 5000])], Comp::Gzip);
    let a = l.image(
        &[base.clone(), layer(&[("a", b"a")], Comp::Gzip)],
        "amd64",
        &["sh"],
    );
    let b = l.image(&[base, layer(&[("b", b"b")], Comp::Gzip)], "amd64", &["sh"]);
    l.tag("example.com/a:1", &a);
    l.tag("example.com/b:1", &b);
    let svc = ImageService::open(&tmp.join("root"), driver).unwrap();
    for rec in svc.import(&l.dir, None).unwrap() {
        let img = svc.load_record(&rec).unwrap();
        svc.unpack(&img).unwrap();
    }
    svc
}

#[test]
fn rm_keeps_what_another_image_uses() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = two_images(tmp.path(), "vfs");
    assert_eq!(svc.store().list().unwrap().len(), 7);
    assert_eq!(svc.snapshots().walk().unwrap().len(), 3);
    let b = svc.load("example.com/b:1").unwrap();

    svc.untag("example.com/a:1").unwrap();
    let r = svc.gc().unwrap();
    assert_eq!(
        r.blobs_removed.len(),
        3,
        "a's manifest, config and own layer"
    );
    assert_eq!(r.snapshots_removed.len(), 1);
    // b is whole.
    for l in &b.manifest.layers {
        assert!(svc.store().exists(&l.digest));
    }
    for c in b.chain_ids() {
        assert!(svc.snapshots().stat(&c.to_string()).is_ok());
    }

    svc.untag("example.com/b:1").unwrap();
    svc.gc().unwrap();
    assert!(svc.store().list().unwrap().is_empty());
    assert!(svc.snapshots().walk().unwrap().is_empty());
}

#[test]
fn a_container_keeps_its_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = two_images(tmp.path(), "vfs");
    let a = svc.load("example.com/a:1").unwrap();
    svc.prepare_rootfs(&a, "container-1").unwrap();
    svc.untag("example.com/a:1").unwrap();
    svc.gc().unwrap();
    // The container's chain stays.
    for c in a.chain_ids() {
        assert!(
            svc.snapshots().stat(&c.to_string()).is_ok(),
            "layer {c} still in use"
        );
    }
    assert_eq!(
        svc.snapshots().stat("container-1").unwrap().kind,
        Kind::Active
    );
    svc.snapshots().remove("container-1").unwrap();
    let r = svc.gc().unwrap();
    assert_eq!(
        r.snapshots_removed.len(),
        1,
        "a's top layer goes, the shared base stays"
    );
}

#[test]
fn prune_removes_orphans_and_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = two_images(tmp.path(), "vfs");
    let orphan = svc.store().put(b"nobody uses me").unwrap();
    std::fs::write(tmp.path().join("root/content/ingest/leftover.tmp"), b"half").unwrap();
    let r = svc.gc().unwrap();
    assert_eq!(r.blobs_removed, vec![orphan]);
    assert_eq!(r.temp_files_removed, 1);
    assert_eq!(svc.records().unwrap().len(), 2);
}

#[test]
fn rm_by_id_removes_every_name() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = two_images(tmp.path(), "vfs");
    svc.tag("example.com/a:1", "example.com/a:latest").unwrap();
    let id = svc
        .load("example.com/a:1")
        .unwrap()
        .id()
        .short()
        .to_string();
    let removed = svc.untag(&id).unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(svc.resolve("example.com/a:latest").is_err());
}
