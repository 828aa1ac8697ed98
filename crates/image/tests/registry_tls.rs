//! Pulls and pushes over HTTPS against a real registry (docker-registry with a certificate
//! from a test CA made here with openssl): refused without the CA, trusted with it in
//! `<root>/certs.d/HOST:PORT/ca.crt`.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::layout::layer;
use common::{Comp, Layout, Registry, have_tools, sha256, skopeo_copy};
use peapod_image::reference::Reference;
use peapod_image::registry::progress::ProgressMode;
use peapod_image::registry::pull::PullOptions;
use peapod_image::registry::push::PushOptions;
use peapod_image::registry::{ClientOptions, RegistryError};
use peapod_image::{ImageError, ImageService};

/// Runs openssl in `dir`, failing the test with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (ca.crt) and a server certificate it signed for 127.0.0.1 and localhost
/// (server.crt, server.key), in `dir`.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=peapod test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

fn secure() -> ClientOptions {
    ClientOptions {
        insecure: Vec::new(),
        credentials: None,
    }
}

#[test]
fn https_registry_needs_its_ca_in_certs_d() {
    if !have_tools(&["docker-registry", "skopeo", "openssl"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    fs::create_dir(&certs).unwrap();
    make_certs(&certs);
    let reg = Registry::start_tls(&certs.join("server.crt"), &certs.join("server.key"));
    let host = reg.host();

    let mut layout = Layout::new(&tmp.path().join("layout"));
    let layers = [
        layer(&[("etc/tls", b"yes\n")], Comp::Gzip),
        layer(&[("big", &[9u8; 200_000])], Comp::Zstd),
    ];
    let want: Vec<String> = layers.iter().map(|l| sha256(&l.blob)).collect();
    let m = layout.image(&layers, "amd64", &["sh"]);
    layout.tag("v1", &m);
    skopeo_copy(&layout.dir, "v1", &format!("{host}/test/tls:v1"), None);
    let reference = Reference::parse(&format!("{host}/test/tls:v1")).unwrap();
    let pull = PullOptions {
        client: secure(),
        progress: ProgressMode::Quiet,
        ..PullOptions::default()
    };

    // Without the CA: one clear line naming the registry and the fix, nothing stored.
    let root = tmp.path().join("root");
    let svc = ImageService::open(&root, "vfs").unwrap();
    let err = svc.pull(&reference, &pull).unwrap_err();
    assert!(
        matches!(err, ImageError::Registry(RegistryError::Untrusted { .. })),
        "{err}"
    );
    let msg = err.to_string();
    let ca_path = root.join("certs.d").join(&host).join("ca.crt");
    assert!(
        msg.contains(&format!("registry {host} "))
            && msg.contains(&ca_path.display().to_string())
            && msg.contains(&format!("--insecure-registry {host}"))
            && !msg.contains('\n'),
        "{msg}"
    );
    assert!(svc.store().list().unwrap().is_empty());
    assert!(svc.records().unwrap().is_empty());

    // With it: pulled over HTTPS, the layers are the ones pushed.
    fs::create_dir_all(ca_path.parent().unwrap()).unwrap();
    fs::copy(certs.join("ca.crt"), &ca_path).unwrap();
    let img = svc.pull(&reference, &pull).unwrap();
    assert_eq!(
        img.record.target.digest.to_string(),
        m["digest"].as_str().unwrap()
    );
    let got: Vec<String> = img
        .manifest
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect();
    assert_eq!(got, want);
    for d in &img.manifest.layers {
        assert_eq!(
            sha256(&svc.store().read(&d.digest).unwrap()),
            d.digest.to_string()
        );
    }

    // Push goes over HTTPS with the same trust; pull it back into a fresh root.
    let dest = Reference::parse(&format!("{host}/test/tls-copy:v2")).unwrap();
    let push = PushOptions {
        client: secure(),
        progress: ProgressMode::Quiet,
        chunk_size: None,
    };
    svc.push(&reference.to_string(), &dest, &push).unwrap();
    let root2 = tmp.path().join("root2");
    let ca2 = root2.join("certs.d").join(&host);
    fs::create_dir_all(&ca2).unwrap();
    fs::copy(certs.join("ca.crt"), ca2.join("ca.crt")).unwrap();
    let again = ImageService::open(&root2, "vfs")
        .unwrap()
        .pull(&dest, &pull)
        .unwrap();
    assert_eq!(again.record.target.digest, img.record.target.digest);

    // A certs.d file that is no certificate: named, with the fix.
    fs::write(ca2.join("broken.crt"), "garbage\n").unwrap();
    let msg = ImageService::open(&root2, "vfs")
        .unwrap()
        .pull(&dest, &pull)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("broken.crt") && msg.contains("no PEM certificate"),
        "{msg}"
    );
}
