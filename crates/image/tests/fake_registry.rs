//! Pulls from a fake registry (a tiny HTTP server in the test) for what a real one would
//! not do: serve corrupt blobs, demand bearer tokens, speak plain HTTP unasked.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use common::fake::{FakeRegistry, Response};
use common::layout::layer;
use common::{Comp, sha256};
use peapod_image::reference::Reference;
use peapod_image::registry::progress::ProgressMode;
use peapod_image::registry::pull::PullOptions;
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

/// Routes for a fake registry serving one image of `layers` as repository `repo`.
fn fake_image(
    repo: &str,
    layers: &[common::Layer],
    tamper: Option<usize>,
) -> (HashMap<String, Response>, String) {
    let mut routes = HashMap::new();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()}
    })
    .to_string();
    let cd = sha256(config.as_bytes());
    routes.insert(
        format!("/v2/{repo}/blobs/{cd}"),
        Response::ok("application/octet-stream", config.clone().into_bytes()),
    );
    let mut descs = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let d = sha256(&l.blob);
        let mut body = l.blob.clone();
        if tamper == Some(i) {
            let n = body.len() / 2;
            body[n] ^= 0xff;
        }
        routes.insert(
            format!("/v2/{repo}/blobs/{d}"),
            Response::ok("application/octet-stream", body),
        );
        descs.push(
            serde_json::json!({"mediaType": l.media_type, "digest": d, "size": l.blob.len()}),
        );
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
    })
    .to_string();
    let md = sha256(manifest.as_bytes());
    let resp = Response::ok(
        "application/vnd.oci.image.manifest.v1+json",
        manifest.into_bytes(),
    );
    routes.insert(format!("/v2/{repo}/manifests/latest"), resp.clone());
    routes.insert(format!("/v2/{repo}/manifests/{md}"), resp);
    (routes, md)
}

#[test]
fn corrupted_blob_is_rejected_and_nothing_stored() {
    let good = layer(&[("ok", b"fine")], Comp::Gzip);
    let bad = layer(&[("evil", &[3u8; 5000])], Comp::Gzip);
    let bad_digest = sha256(&bad.blob);
    let (routes, _) = fake_image("x/corrupt", &[good, bad], Some(1));
    let fake = FakeRegistry::start(routes, None);
    let tmp = tempfile::tempdir().unwrap();
    let svc = service(tmp.path());
    let name = format!("{}/x/corrupt:latest", fake.host());
    let mut o = opts(&fake.host());
    o.concurrency = 1;
    let err = svc.pull(&Reference::parse(&name).unwrap(), &o).unwrap_err();
    assert!(
        matches!(err, ImageError::Registry(RegistryError::Corrupt { .. })),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&bad_digest)
            && msg.contains("does not match")
            && msg.contains("nothing was stored"),
        "{msg}"
    );
    // The bad blob is not in the store, nothing is half-written, the name is not set.
    let stored: Vec<String> = svc
        .store()
        .list()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert!(!stored.contains(&bad_digest), "{stored:?}");
    assert!(
        fs::read_dir(tmp.path().join("content/ingest"))
            .unwrap()
            .next()
            .is_none()
    );
    assert!(svc.records().unwrap().is_empty());
    // The good layer under it may be kept (verified, for a later resume); no
    // snapshot holds the bad one and no extraction is left half-done.
    let snaps = svc.snapshots().walk().unwrap();
    assert!(snaps.len() <= 1, "{snaps:?}");
    assert!(
        snaps
            .iter()
            .all(|s| s.kind == peapod_image::snapshot::Kind::Committed && s.parent.is_none())
    );
}

#[test]
fn bearer_token_challenge_and_resume() {
    let l1 = layer(&[("one", b"1")], Comp::Gzip);
    let l2 = layer(&[("two", b"2")], Comp::Zstd);
    let d1 = sha256(&l1.blob);
    let d2 = sha256(&l2.blob);
    let (routes, md) = fake_image("x/tok", &[l1.clone(), l2], None);
    let fake = FakeRegistry::start(routes, Some("tok-123"));
    let tmp = tempfile::tempdir().unwrap();
    let svc = service(tmp.path());
    // An interrupted earlier pull left layer one complete in the store.
    svc.store()
        .put_verified(&l1.blob, &d1.parse().unwrap())
        .unwrap();
    let name = format!("{}/x/tok:latest", fake.host());
    let img = svc
        .pull(&Reference::parse(&name).unwrap(), &opts(&fake.host()))
        .unwrap();
    assert_eq!(img.record.target.digest.to_string(), md);
    let reqs = fake.requests();
    assert!(reqs.iter().any(|r| r.starts_with("GET /token")), "{reqs:?}");
    assert!(
        !reqs.iter().any(|r| r.contains(&d1)),
        "layer one was fetched again: {reqs:?}"
    );
    assert!(reqs.iter().any(|r| r.contains(&d2)), "{reqs:?}");
}

#[test]
fn plain_http_needs_insecure_registry() {
    let (routes, _) = fake_image("x/y", &[layer(&[("a", b"a")], Comp::Gzip)], None);
    let fake = FakeRegistry::start(routes, None);
    let tmp = tempfile::tempdir().unwrap();
    let svc = service(tmp.path());
    let mut o = opts("other:1");
    o.client.insecure.clear();
    let err = svc
        .pull(
            &Reference::parse(&format!("{}/x/y", fake.host())).unwrap(),
            &o,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("--insecure-registry"), "{err}");
}
