//! Import and export: OCI layouts, oci-archive and docker-archive, round trips and bad input.

mod common;

use std::fs;
use std::path::Path;

use common::layout::layer;
use common::{Comp, Layout, have_tools};
use peapod_image::ImageService;
use peapod_image::archive::Format;

fn service(dir: &Path) -> ImageService {
    ImageService::open(dir, "vfs").unwrap()
}

/// A layout with one two-layer image tagged `v1`.
fn sample_layout(dir: &Path) -> (Layout, serde_json::Value) {
    let mut l = Layout::new(dir);
    let m = l.image(
        &[
            layer(&[("etc/", b""), ("etc/hello", b"hello\n")], Comp::Gzip),
            layer(&[("bin/tool", b"#!/bin/sh\n")], Comp::Zstd),
        ],
        "amd64",
        &["/bin/tool"],
    );
    l.tag("v1", &m);
    (l, m)
}

#[test]
fn import_layout_needs_a_name_for_bare_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let (l, m) = sample_layout(&tmp.path().join("layout"));
    let svc = service(&tmp.path().join("root"));
    let err = svc.import(&l.dir, None).unwrap_err().to_string();
    assert!(
        err.contains("no name") && err.contains("peapod image import PATH NAME"),
        "{err}"
    );
    assert!(svc.records().unwrap().is_empty());
    let recs = svc.import(&l.dir, Some("local/app:v1")).unwrap();
    assert_eq!(recs[0].name, "docker.io/local/app:v1");
    assert_eq!(
        recs[0].target.digest.to_string(),
        m["digest"].as_str().unwrap()
    );
    let img = svc.load("local/app:v1").unwrap();
    svc.unpack(&img).unwrap();
}

#[test]
fn round_trips_through_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let (l, m) = sample_layout(&tmp.path().join("layout"));
    let svc = service(&tmp.path().join("root"));
    svc.import(&l.dir, Some("example.com/app:v1")).unwrap();
    let orig = svc.load("example.com/app:v1").unwrap();

    for (format, dest) in [
        (Format::OciLayout, tmp.path().join("out-layout")),
        (Format::OciArchive, tmp.path().join("out.oci.tar")),
        (Format::DockerArchive, tmp.path().join("out.docker.tar")),
    ] {
        svc.export("example.com/app:v1", &dest, format).unwrap();
        let fresh = service(&tmp.path().join(format!("root-{format:?}")));
        let recs = fresh.import(&dest, None).unwrap();
        assert_eq!(recs.len(), 1, "{format:?}");
        assert_eq!(
            recs[0].name, "example.com/app:v1",
            "{format:?} keeps the name"
        );
        let img = fresh.load("example.com/app:v1").unwrap();
        assert_eq!(img.id(), orig.id(), "{format:?} keeps the image ID");
        assert_eq!(img.config.rootfs.diff_ids, orig.config.rootfs.diff_ids);
        if format != Format::DockerArchive {
            assert_eq!(
                img.record.target.digest.to_string(),
                m["digest"].as_str().unwrap(),
                "{format:?}"
            );
        }
        let top = fresh.unpack(&img).unwrap().unwrap();
        let dir = fresh.snapshots().graph_driver(&top).unwrap().data["Dir"].clone();
        assert_eq!(
            fs::read_to_string(Path::new(&dir).join("etc/hello")).unwrap(),
            "hello\n"
        );
    }
}

#[test]
fn skopeo_reads_our_oci_archive() {
    if !have_tools(&["skopeo"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (l, _) = sample_layout(&tmp.path().join("layout"));
    let svc = service(&tmp.path().join("root"));
    svc.import(&l.dir, Some("example.com/app:v1")).unwrap();
    let ar = tmp.path().join("app.tar");
    svc.export("example.com/app:v1", &ar, Format::OciArchive)
        .unwrap();
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", &format!("oci-archive:{}", ar.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("layers"));
}

#[test]
fn multi_arch_layout_imports_the_host_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let mut l = Layout::new(&tmp.path().join("layout"));
    let amd = l.image(
        &[layer(&[("arch", b"amd64")], Comp::Gzip)],
        "amd64",
        &["sh"],
    );
    let arm = l.image(
        &[layer(&[("arch", b"arm64")], Comp::Gzip)],
        "arm64",
        &["sh"],
    );
    let ix = l.index(&[amd.clone(), arm]);
    l.tag("example.com/multi:1", &ix);
    let svc = service(&tmp.path().join("root"));
    let recs = svc.import(&l.dir, None).unwrap();
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(
            recs[0].target.digest.to_string(),
            amd["digest"].as_str().unwrap()
        );
    }
    assert_eq!(
        recs[0].index.as_ref().unwrap().digest.to_string(),
        ix["digest"].as_str().unwrap()
    );
}

#[test]
fn bad_input_is_refused_and_nothing_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = service(&tmp.path().join("root"));
    // Not a layout.
    fs::create_dir(tmp.path().join("empty")).unwrap();
    let err = svc
        .import(&tmp.path().join("empty"), Some("x"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an OCI image layout"), "{err}");
    // A layout whose blob does not match its digest.
    let (l, m) = sample_layout(&tmp.path().join("layout"));
    let d = m["digest"].as_str().unwrap();
    fs::write(l.dir.join("blobs/sha256").join(&d[7..]), b"{}").unwrap();
    let err = svc.import(&l.dir, Some("x")).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    // Not a tar at all.
    fs::write(tmp.path().join("junk.tar"), b"this is not a tar").unwrap();
    assert!(svc.import(&tmp.path().join("junk.tar"), Some("x")).is_err());
    // A docker-archive whose manifest points outside the archive.
    let mut b = tar::Builder::new(Vec::new());
    let manifest = br#"[{"Config":"../../etc/passwd","RepoTags":["x:1"],"Layers":[]}]"#;
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    b.append_data(&mut h, "manifest.json", &manifest[..])
        .unwrap();
    fs::write(tmp.path().join("evil.tar"), b.into_inner().unwrap()).unwrap();
    let err = svc
        .import(&tmp.path().join("evil.tar"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'..'"), "{err}");
    assert!(svc.records().unwrap().is_empty());
}
