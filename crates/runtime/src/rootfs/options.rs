//! Mount options of the runtime spec (and runc's extras) split into mount(2)
//! flags, propagation changes, recursive attributes and filesystem data.

use nix::mount::MsFlags;

/// Mount attributes applied recursively with mount_setattr(2) ("rro", "rnosuid", ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecursiveAttrs {
    pub set: u64,
    pub clear: u64,
}

/// A spec mount's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    /// Flags the options turn off explicitly (rw, suid, dev, exec, ...): used
    /// to decide which locked flags of a bind source must be kept.
    pub cleared: MsFlags,
    /// Each entry is applied with its own mount(2) call after the mount.
    pub propagation: Vec<MsFlags>,
    pub recursive: RecursiveAttrs,
    /// Comma-joined filesystem-specific options (size=, mode=, newinstance, ...).
    pub data: String,
    /// runc's `tmpcopyup`: a tmpfs starts with a copy of the directory below it.
    pub copy_up: bool,
    /// `idmap` (Some(false): the top mount only) or `ridmap` (Some(true): every
    /// mount of the tree) is id-mapped; see `rootfs::idmap`.
    pub idmap: Option<bool>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            recursive: RecursiveAttrs::default(),
            data: String::new(),
            copy_up: false,
            idmap: None,
        }
    }
}

impl MountOptions {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    pub fn parse(options: &[String]) -> Self {
        let mut out = MountOptions::default();
        let mut data = Vec::new();
        for opt in options {
            let opt = opt.as_str();
            if let Some((clear, set)) = flag(opt) {
                if clear {
                    out.flags.remove(set);
                    out.cleared.insert(set);
                } else {
                    out.flags.insert(set);
                    out.cleared.remove(set);
                }
            } else if let Some(p) = propagation(opt) {
                out.propagation.push(p);
            } else if let Some((clear, attr)) = recursive(opt) {
                if clear {
                    out.recursive.clear |= attr;
                    out.recursive.set &= !attr;
                } else {
                    out.recursive.set |= attr;
                    out.recursive.clear &= !attr;
                }
            } else if opt == "rbind" {
                out.flags.insert(MsFlags::MS_BIND | MsFlags::MS_REC);
            } else if opt == "tmpcopyup" {
                out.copy_up = true;
            } else if opt == "idmap" || opt == "ridmap" {
                out.idmap = Some(opt == "ridmap");
            } else if opt == "defaults" || opt.is_empty() {
            } else {
                data.push(opt);
            }
        }
        out.data = data.join(",");
        out
    }
}

/// `Some((clears, flag))` for a mount(2) flag option.
fn flag(opt: &str) -> Option<(bool, MsFlags)> {
    let f = match opt {
        "ro" => (false, MsFlags::MS_RDONLY),
        "rw" => (true, MsFlags::MS_RDONLY),
        "nosuid" => (false, MsFlags::MS_NOSUID),
        "suid" => (true, MsFlags::MS_NOSUID),
        "nodev" => (false, MsFlags::MS_NODEV),
        "dev" => (true, MsFlags::MS_NODEV),
        "noexec" => (false, MsFlags::MS_NOEXEC),
        "exec" => (true, MsFlags::MS_NOEXEC),
        "sync" => (false, MsFlags::MS_SYNCHRONOUS),
        "async" => (true, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (false, MsFlags::MS_DIRSYNC),
        "remount" => (false, MsFlags::MS_REMOUNT),
        "mand" => (false, MsFlags::MS_MANDLOCK),
        "nomand" => (true, MsFlags::MS_MANDLOCK),
        "noatime" => (false, MsFlags::MS_NOATIME),
        "atime" => (true, MsFlags::MS_NOATIME),
        "nodiratime" => (false, MsFlags::MS_NODIRATIME),
        "diratime" => (true, MsFlags::MS_NODIRATIME),
        "relatime" => (false, MsFlags::MS_RELATIME),
        "norelatime" => (true, MsFlags::MS_RELATIME),
        "strictatime" => (false, MsFlags::MS_STRICTATIME),
        "nostrictatime" => (true, MsFlags::MS_STRICTATIME),
        "bind" => (false, MsFlags::MS_BIND),
        "silent" => (false, MsFlags::MS_SILENT),
        "loud" => (true, MsFlags::MS_SILENT),
        "iversion" => (false, MsFlags::MS_I_VERSION),
        "noiversion" => (true, MsFlags::MS_I_VERSION),
        "lazytime" => (false, MsFlags::MS_LAZYTIME),
        "nolazytime" => (true, MsFlags::MS_LAZYTIME),
        "nosymfollow" => (false, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "symfollow" => (true, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        _ => return None,
    };
    Some(f)
}

fn propagation(opt: &str) -> Option<MsFlags> {
    let rec = MsFlags::MS_REC;
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

fn recursive(opt: &str) -> Option<(bool, u64)> {
    Some(match opt {
        "rro" => (false, MOUNT_ATTR_RDONLY),
        "rrw" => (true, MOUNT_ATTR_RDONLY),
        "rnosuid" => (false, MOUNT_ATTR_NOSUID),
        "rsuid" => (true, MOUNT_ATTR_NOSUID),
        "rnodev" => (false, MOUNT_ATTR_NODEV),
        "rdev" => (true, MOUNT_ATTR_NODEV),
        "rnoexec" => (false, MOUNT_ATTR_NOEXEC),
        "rexec" => (true, MOUNT_ATTR_NOEXEC),
        "rnoatime" => (false, MOUNT_ATTR_NOATIME),
        "ratime" => (true, MOUNT_ATTR_NOATIME),
        "rstrictatime" => (false, MOUNT_ATTR_STRICTATIME),
        "rnodiratime" => (false, MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (true, MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (false, MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (true, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Every option name this runtime understands (for `features`).
pub fn known_options() -> Vec<&'static str> {
    vec![
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "idmap",
        "iversion",
        "lazytime",
        "loud",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "noiversion",
        "nolazytime",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "nosymfollow",
        "private",
        "ratime",
        "rbind",
        "rdev",
        "rdiratime",
        "relatime",
        "remount",
        "rexec",
        "ridmap",
        "rnoatime",
        "rnodev",
        "rnodiratime",
        "rnoexec",
        "rnosuid",
        "rnosymfollow",
        "ro",
        "rprivate",
        "rro",
        "rrw",
        "rshared",
        "rslave",
        "rstrictatime",
        "rsuid",
        "rsymfollow",
        "runbindable",
        "rw",
        "shared",
        "silent",
        "slave",
        "strictatime",
        "suid",
        "symfollow",
        "sync",
        "tmpcopyup",
        "unbindable",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        MountOptions::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_data_and_propagation() {
        let o = p(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = p(&["rbind", "ro", "rprivate"]);
        assert!(o.is_bind() && o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        let o = p(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
        let o = p(&["rro", "rnosuid"]);
        assert_eq!(o.recursive.set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
    }
}
