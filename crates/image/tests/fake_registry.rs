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

/// This machine's address on its default route, if it has one (nothing is sent).
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn plain_http_loopback_falls_back_others_need_insecure_registry() {
    let (routes, md) = fake_image("x/y", &[layer(&[("a", b"a")], Comp::Gzip)], None);
    let fake = FakeRegistry::start(routes.clone(), None);
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts("other:1");
    o.client.insecure.clear();
    // Loopback, as Docker does: HTTPS first, plain HTTP when the server answers in it.
    let img = service(&tmp.path().join("a"))
        .pull(
            &Reference::parse(&format!("{}/x/y", fake.host())).unwrap(),
            &o,
        )
        .unwrap();
    assert_eq!(img.record.target.digest.to_string(), md);

    let Some(ip) = non_loopback_ip() else {
        eprintln!("no non-loopback address: skipped the remote half");
        return;
    };
    let remote = FakeRegistry::start_at(&ip.to_string(), routes, None);
    let err = service(&tmp.path().join("b"))
        .pull(
            &Reference::parse(&format!("{}/x/y", remote.host())).unwrap(),
            &o,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("--insecure-registry"), "{err}");
    assert!(
        remote.requests().is_empty(),
        "no plain HTTP request: {:?}",
        remote.requests()
    );
}

/// A fake registry serving one image with a single incompressible layer of `n` bytes.
fn one_big_layer(repo: &str, n: usize) -> (FakeRegistry, common::Layer, String) {
    let mut x: u32 = 12345;
    let data: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let l = layer(&[("big", &data)], Comp::None);
    let (routes, _) = fake_image(repo, std::slice::from_ref(&l), None);
    let fake = FakeRegistry::start(routes, None);
    let path = format!("/v2/{repo}/blobs/{}", sha256(&l.blob));
    (fake, l, path)
}

fn ingest_files(root: &Path) -> Vec<String> {
    fs::read_dir(root.join("content/ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn interrupted_download_resumes_with_a_range_request() {
    let (fake, l, path) = one_big_layer("x/resume", 300_000);
    let d = sha256(&l.blob);
    let digest: peapod_image::digest::Digest = d.parse().unwrap();
    let half = l.blob.len() / 2;
    fake.cut_once(&path, half);
    let tmp = tempfile::tempdir().unwrap();
    let svc = service(tmp.path());
    let reference = Reference::parse(&format!("{}/x/resume", fake.host())).unwrap();

    let err = svc.pull(&reference, &opts(&fake.host())).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::Registry(RegistryError::Interrupted { done, .. }) if done == half as u64
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&d) && msg.contains("pull again to resume"),
        "{msg}"
    );
    assert!(!svc.store().exists(&digest));
    assert!(svc.records().unwrap().is_empty());
    let partial = svc.store().partial_path(&digest);
    assert_eq!(fs::metadata(&partial).unwrap().len(), half as u64);
    assert_eq!(
        partial.file_name().unwrap().to_string_lossy(),
        format!("sha256-{}.partial", digest.hex())
    );

    svc.pull(&reference, &opts(&fake.host())).unwrap();
    let reqs = fake.requests();
    let ranged = format!("GET {path} Range: bytes={half}-");
    assert!(reqs.contains(&ranged), "{reqs:?}");
    assert_eq!(svc.store().read(&digest).unwrap(), l.blob);
    assert!(ingest_files(tmp.path()).is_empty());
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let (fake, l, path) = one_big_layer("x/norange", 200_000);
    let digest: peapod_image::digest::Digest = sha256(&l.blob).parse().unwrap();
    fake.cut_once(&path, 1000);
    fake.ignore_range(true);
    let tmp = tempfile::tempdir().unwrap();
    let svc = service(tmp.path());
    let reference = Reference::parse(&format!("{}/x/norange", fake.host())).unwrap();
    svc.pull(&reference, &opts(&fake.host())).unwrap_err();
    svc.pull(&reference, &opts(&fake.host())).unwrap();
    let reqs = fake.requests();
    assert!(
        reqs.contains(&format!("GET {path} Range: bytes=1000-")),
        "{reqs:?}"
    );
    assert_eq!(svc.store().read(&digest).unwrap(), l.blob);
    assert!(ingest_files(tmp.path()).is_empty());
}

#[test]
fn wrong_or_overlong_partial_is_deleted_and_nothing_stored() {
    let (fake, l, _) = one_big_layer("x/badpart", 100_000);
    let d = sha256(&l.blob);
    let digest: peapod_image::digest::Digest = d.parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let svc = service(tmp.path());
    let reference = Reference::parse(&format!("{}/x/badpart", fake.host())).unwrap();
    let partial = svc.store().partial_path(&digest);

    // Wrong bytes kept from "earlier": the digest over the whole blob tells.
    let mut wrong = l.blob[..5000].to_vec();
    wrong[10] ^= 0xff;
    fs::write(&partial, &wrong).unwrap();
    let err = svc.pull(&reference, &opts(&fake.host())).unwrap_err();
    assert!(
        matches!(err, ImageError::Registry(RegistryError::Corrupt { .. })),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&d)
            && msg.contains("resumed at byte 5000")
            && msg.contains("nothing was stored"),
        "{msg}"
    );
    assert!(!partial.exists());
    assert!(!svc.store().exists(&digest));

    // Longer than the blob: it cannot be this blob's beginning.
    let mut long = l.blob.clone();
    long.extend_from_slice(b"extra");
    fs::write(&partial, &long).unwrap();
    let msg = svc
        .pull(&reference, &opts(&fake.host()))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cannot be continued") && msg.contains(&partial.display().to_string()),
        "{msg}"
    );
    assert!(!partial.exists());
    assert!(!svc.store().exists(&digest));
    assert!(svc.records().unwrap().is_empty());

    // With the bad partial gone, the next pull starts from zero and succeeds.
    svc.pull(&reference, &opts(&fake.host())).unwrap();
    assert_eq!(svc.store().read(&digest).unwrap(), l.blob);
}

#[test]
fn complete_partial_is_stored_without_downloading() {
    let (fake, l, path) = one_big_layer("x/complete", 50_000);
    let digest: peapod_image::digest::Digest = sha256(&l.blob).parse().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let svc = service(tmp.path());
    // Interrupted after the last byte, before the rename.
    fs::write(svc.store().partial_path(&digest), &l.blob).unwrap();
    let reference = Reference::parse(&format!("{}/x/complete", fake.host())).unwrap();
    svc.pull(&reference, &opts(&fake.host())).unwrap();
    let reqs = fake.requests();
    assert!(!reqs.iter().any(|r| r.contains(&path)), "{reqs:?}");
    assert_eq!(svc.store().read(&digest).unwrap(), l.blob);
    assert!(ingest_files(tmp.path()).is_empty());
}
