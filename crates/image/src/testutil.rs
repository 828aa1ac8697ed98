//! Test helpers: tar layers with arbitrary (also hostile) entries, private mount namespaces.

use tar::{EntryType, Header};

/// Builds a tar stream entry by entry; names are written raw, so tests can write the
/// hostile paths a real tar producer would refuse.
pub struct Tar {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Self {
        Tar {
            builder: tar::Builder::new(Vec::new()),
        }
    }
}

fn header(kind: EntryType, name: &str, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    let gnu = h.as_gnu_mut().expect("gnu header");
    assert!(name.len() < 100, "test names are short");
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h
}

impl Tar {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, mut h: Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.builder.append(&h, data).expect("append");
        self
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.push(header(EntryType::Directory, name, 0o755, 0), &[])
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.push(
            header(EntryType::Regular, name, 0o644, data.len() as u64),
            data,
        )
    }

    pub fn file_with(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> &mut Self {
        let mut h = header(EntryType::Regular, name, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.push(h, data)
    }

    fn link(&mut self, kind: EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = header(kind, name, 0o777, 0);
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
        self.push(h, &[])
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(EntryType::Symlink, name, target)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(EntryType::Link, name, target)
    }

    pub fn device(&mut self, kind: EntryType, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = header(kind, name, 0o600, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.push(h, &[])
    }

    pub fn xattr_file(&mut self, name: &str, data: &[u8], key: &str, value: &[u8]) -> &mut Self {
        let k = format!("SCHILY.xattr.{key}");
        self.builder
            .append_pax_extensions([(k.as_str(), value)])
            .expect("pax");
        self.file(name, data)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        b.into_inner().expect("finish tar")
    }
}

/// Moves the calling thread into a private mount namespace with `/` made rprivate, so
/// the mounts a test makes vanish with its thread and never reach the host.
pub fn private_mount_ns() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .expect("unshare(CLONE_NEWNS): tests that mount need root");
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / rprivate");
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
