//! Markers saying a network's host rules (NAT, FORWARD; see
//! [`peapod_net::host_rules`]) were ensured, so that an attach pays no
//! iptables call once they are: one file per network under
//! [`Paths::network_markers`](crate::paths::Paths::network_markers), in the
//! runtime root (a tmpfs: a reboot, which clears the rules, clears the
//! markers too).
//!
//! A marker holds what the rules were made from: the boot id (for a runtime
//! root that is no tmpfs), the network's name, bridge and subnet, and the
//! identity of its config file (device, inode, modification time), so a
//! network removed and created again, or a config list rewritten, is ensured
//! anew.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use peapod_net::HostRules;

/// The marker of network `name` in `dir`.
pub(super) fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.rules"))
}

/// What the marker of `rules`, made from config file `config`, holds.
pub(super) fn content(rules: &HostRules, config: &Path) -> io::Result<String> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    let meta = fs::metadata(config)?;
    Ok(format!(
        "boot {}\nrules {}\nconfig {} {} {}.{:09}\n",
        boot.trim(),
        rules.fingerprint(),
        meta.dev(),
        meta.ino(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// Whether `marker` holds exactly `want`.
pub(super) fn matches(marker: &Path, want: &str) -> bool {
    fs::read_to_string(marker).is_ok_and(|have| have == want)
}

/// Write `content` to `marker` (atomically: a torn marker never matches).
pub(super) fn write(marker: &Path, content: &str) -> io::Result<()> {
    let dir = marker.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = marker.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        fs::rename(&tmp, marker)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Remove `marker`; a missing one is fine.
pub(super) fn remove(marker: &Path) -> io::Result<()> {
    match fs::remove_file(marker) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_matches_until_its_config_changes() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("n.conflist");
        fs::write(&config, "{}").unwrap();
        let rules = HostRules::new("n", "br-n", "10.5.0.0/24").unwrap();
        let marker = path(&dir.path().join("markers"), "n");
        let want = content(&rules, &config).unwrap();
        assert!(want.contains("rules n br-n 10.5.0.0/24\n"), "{want}");
        assert!(!matches(&marker, &want));
        write(&marker, &want).unwrap();
        assert!(matches(&marker, &want));
        // Rewritten as a new file (as network create and migration do).
        let tmp = dir.path().join("new");
        fs::write(&tmp, "{}").unwrap();
        fs::rename(&tmp, &config).unwrap();
        assert!(!matches(&marker, &content(&rules, &config).unwrap()));
        remove(&marker).unwrap();
        remove(&marker).unwrap();
        assert!(!marker.exists());
    }
}
