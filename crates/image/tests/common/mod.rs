//! Shared helpers of the image integration tests: OCI layouts built from scratch, a real
//! registry (Debian's docker-registry) on a free loopback port, and a fake one.

#![allow(dead_code)]

pub mod fake;
pub mod layout;
pub mod registry;

use std::path::Path;

#[allow(unused_imports)]
pub use layout::{Comp, Layer, Layout};
#[allow(unused_imports)]
pub use registry::Registry;

pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the tools a registry test needs are installed (scripts/lib/common.sh installs
/// them); prints why a test is skipped when not.
pub fn have_tools(tools: &[&str]) -> bool {
    for t in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).is_file()))
            .unwrap_or(false);
        if !found {
            eprintln!("skipped: {t} is not installed (bash scripts/test.sh installs it)");
            return false;
        }
    }
    true
}

/// Copies every image of an OCI layout into a registry with skopeo.
pub fn skopeo_copy(layout: &Path, tag: &str, dest: &str, creds: Option<(&str, &str)>) {
    let mut cmd = std::process::Command::new("skopeo");
    cmd.args([
        "copy",
        "--all",
        "--quiet",
        "--dest-tls-verify=false",
        "--preserve-digests",
    ]);
    if let Some((u, p)) = creds {
        cmd.arg(format!("--dest-creds={u}:{p}"));
    }
    cmd.arg(format!("oci:{}:{tag}", layout.display()));
    cmd.arg(format!("docker://{dest}"));
    let out = cmd.output().expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo copy to {dest} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
