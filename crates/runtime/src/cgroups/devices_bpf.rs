//! cgroup v2 device control: a BPF_PROG_TYPE_CGROUP_DEVICE program built from
//! the rules and attached to the cgroup with BPF_PROG_ATTACH.
//!
//! Semantics match v1 with a deny-all start: each requested access bit
//! (mknod, read, write) is decided by the last rule that covers the device
//! and that bit; a bit no rule covers is denied; a request is allowed only if
//! every requested bit is.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::devices::{ACC_MKNOD, ACC_READ, ACC_WRITE, DevKind, DeviceRule};
use super::error::{CgroupError, Result};

// Kernel ABI constants (include/uapi/linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_DEVCG_DEV_BLOCK: u32 = 1;
const BPF_DEVCG_DEV_CHAR: u32 = 2;

// Opcodes used by the generated program.
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_K: u8 = 0xb4;
const JMP_JA: u8 = 0x05;
const JMP_JSET_K: u8 = 0x45; // if dst & imm goto
const JMP32_JNE_K: u8 = 0x56; // if (u32)dst != imm goto
const JMP_EXIT: u8 = 0x95;

const LICENSE: &[u8] = b"Apache-2.0\0";

/// One instruction; `target` is a label for jumps, resolved in `finish`.
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
    target: Option<usize>,
}

#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn emit(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
            target: None,
        });
    }
    fn jump(&mut self, code: u8, dst: u8, imm: i32, label: usize) {
        self.insns.push(Insn {
            code,
            dst,
            src: 0,
            off: 0,
            imm,
            target: Some(label),
        });
    }
    fn new_label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, label: usize) {
        self.labels[label] = Some(self.insns.len());
    }
    fn ret(&mut self, v: i32) {
        self.emit(ALU32_MOV_K, 0, 0, 0, v);
        self.emit(JMP_EXIT, 0, 0, 0, 0);
    }
    fn finish(self, path: &Path) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(self.insns.len());
        for (pc, i) in self.insns.iter().enumerate() {
            let mut off = i.off;
            if let Some(l) = i.target {
                let to = self.labels[l].unwrap_or(pc + 1);
                off = i16::try_from(to as i64 - pc as i64 - 1).map_err(|_| CgroupError::Bpf {
                    op: "program build",
                    path: path.to_path_buf(),
                    source: io::Error::other("too many device rules for one eBPF program"),
                    log: String::new(),
                })?;
            }
            let mut b = [0u8; 8];
            b[0] = i.code;
            b[1] = (i.src << 4) | (i.dst & 0x0f);
            b[2..4].copy_from_slice(&off.to_le_bytes());
            b[4..8].copy_from_slice(&i.imm.to_le_bytes());
            out.push(u64::from_le_bytes(b));
        }
        Ok(out)
    }
}

/// Build the filter program (raw little-endian instructions) for `rules`.
pub(crate) fn build_program(rules: &[DeviceRule], path: &Path) -> Result<Vec<u64>> {
    let mut a = Asm::default();
    // r2 = device type, r3 = requested access, r4 = major, r5 = minor
    // (struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }).
    a.emit(LDX_MEM_W, 2, 1, 0, 0);
    a.emit(ALU32_AND_K, 2, 0, 0, 0xffff);
    a.emit(LDX_MEM_W, 3, 1, 0, 0);
    a.emit(ALU32_RSH_K, 3, 0, 0, 16);
    a.emit(LDX_MEM_W, 4, 1, 4, 0);
    a.emit(LDX_MEM_W, 5, 1, 8, 0);
    for bit in [ACC_MKNOD, ACC_READ, ACC_WRITE] {
        let next = a.new_label();
        let check = a.new_label();
        a.jump(JMP_JSET_K, 3, bit as i32, check);
        a.jump(JMP_JA, 0, 0, next);
        a.bind(check);
        let mut decided = false;
        for r in rules.iter().rev().filter(|r| r.access & bit != 0) {
            let skip = a.new_label();
            let kind = match r.kind {
                DevKind::All => None,
                DevKind::Char => Some(BPF_DEVCG_DEV_CHAR),
                DevKind::Block => Some(BPF_DEVCG_DEV_BLOCK),
            };
            let conditional = kind.is_some() || r.major.is_some() || r.minor.is_some();
            if let Some(k) = kind {
                a.jump(JMP32_JNE_K, 2, k as i32, skip);
            }
            if let Some(m) = r.major {
                a.jump(JMP32_JNE_K, 4, m as i32, skip);
            }
            if let Some(m) = r.minor {
                a.jump(JMP32_JNE_K, 5, m as i32, skip);
            }
            if r.allow {
                a.jump(JMP_JA, 0, 0, next);
            } else {
                a.ret(0);
            }
            a.bind(skip);
            if !conditional {
                // Earlier rules are shadowed; emitting them would leave
                // unreachable code, which the verifier rejects.
                decided = true;
                break;
            }
        }
        if !decided {
            a.ret(0);
        }
        a.bind(next);
    }
    a.ret(1);
    a.finish(path)
}

/// A zeroed `union bpf_attr`, larger than any kernel's, so that fields the
/// kernel writes back always land inside it.
#[repr(C, align(8))]
struct Attr([u8; 256]);

impl Attr {
    fn new() -> Self {
        Attr([0; 256])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a valid, writable, zero-initialised buffer of the size
    // passed; every pointer stored in it (instructions, license, log, id
    // array) points to memory the caller keeps alive for the duration of the
    // call. The kernel reads at most `size` bytes and writes back only fields
    // inside the union, which fits in the 256-byte buffer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned_fd(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(rc).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn load(insns: &[u64], path: &Path) -> Result<OwnedFd> {
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = Attr::new();
    attr.u32(0, BPF_PROG_TYPE_CGROUP_DEVICE)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, LICENSE.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64)
        .u32(68, BPF_CGROUP_DEVICE);
    attr.0[48..48 + 7].copy_from_slice(b"pea_dev");
    bpf(BPF_PROG_LOAD, &mut attr)
        .and_then(owned_fd)
        .map_err(|source| {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            CgroupError::Bpf {
                op: "BPF_PROG_LOAD",
                path: path.to_path_buf(),
                source,
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!("\nverifier log:\n{text}")
                },
            }
        })
}

/// Ids of device programs attached directly to the cgroup.
pub(crate) fn query(cg: &File, path: &Path) -> Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = Attr::new();
    attr.u32(0, cg.as_raw_fd() as u32)
        .u32(4, BPF_CGROUP_DEVICE)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut attr).map_err(|source| CgroupError::Bpf {
        op: "BPF_PROG_QUERY",
        path: path.to_path_buf(),
        source,
        log: String::new(),
    })?;
    let n = (attr.get_u32(24) as usize).min(ids.len());
    ids.truncate(n);
    Ok(ids)
}

fn attach_op(cmd: libc::c_long, cg: &File, prog: &OwnedFd, flags: u32) -> io::Result<()> {
    let mut attr = Attr::new();
    attr.u32(0, cg.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, BPF_CGROUP_DEVICE)
        .u32(12, flags);
    bpf(cmd, &mut attr).map(|_| ())
}

/// Replace the device filter of the cgroup directory `dir` with one built
/// from `rules`: the new program is attached before old ones are detached,
/// so there is no window without a filter.
pub(crate) fn apply(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let insns = build_program(rules, dir)?;
    let prog = load(&insns, dir)?;
    let cg = File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let old = query(&cg, dir)?;
    let err = |op, source| CgroupError::Bpf {
        op,
        path: dir.to_path_buf(),
        source,
        log: String::new(),
    };
    attach_op(BPF_PROG_ATTACH, &cg, &prog, BPF_F_ALLOW_MULTI)
        .map_err(|e| err("BPF_PROG_ATTACH", e))?;
    for id in old {
        let mut attr = Attr::new();
        attr.u32(0, id);
        let old_fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).and_then(owned_fd) {
            Ok(fd) => fd,
            // Detached concurrently: nothing to do.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(err("BPF_PROG_GET_FD_BY_ID", e)),
        };
        match attach_op(BPF_PROG_DETACH, &cg, &old_fd, 0) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(err("BPF_PROG_DETACH", e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::devices::{normalize, tests::rule};
    use super::*;
    use oci_spec::runtime::LinuxDeviceType as T;

    /// Run the program on one request with a tiny interpreter of the opcodes
    /// we emit (the kernel offers no test-run for device programs).
    fn run(prog: &[u64], kind: u32, access: u32, major: u32, minor: u32) -> u32 {
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let b = prog[pc].to_le_bytes();
            let (code, dst, src) = (b[0], (b[1] & 0xf) as usize, (b[1] >> 4) as usize);
            let off = i16::from_le_bytes([b[2], b[3]]) as i64;
            let imm = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            assert_eq!(src, if code == LDX_MEM_W { 1 } else { 0 });
            let jump = |pc: usize| (pc as i64 + 1 + off) as usize;
            pc = match code {
                LDX_MEM_W => {
                    r[dst] = ctx[(off / 4) as usize] as u64;
                    pc + 1
                }
                ALU32_AND_K => {
                    r[dst] = (r[dst] as u32 & imm as u32) as u64;
                    pc + 1
                }
                ALU32_RSH_K => {
                    r[dst] = ((r[dst] as u32) >> imm) as u64;
                    pc + 1
                }
                ALU32_MOV_K => {
                    r[dst] = imm as u32 as u64;
                    pc + 1
                }
                JMP_JA => jump(pc),
                JMP_JSET_K if r[dst] & (imm as i64 as u64) != 0 => jump(pc),
                JMP32_JNE_K if r[dst] as u32 != imm as u32 => jump(pc),
                JMP_JSET_K | JMP32_JNE_K => pc + 1,
                JMP_EXIT => return r[0] as u32,
                other => panic!("unexpected opcode {other:#x}"),
            };
        }
    }

    const C: u32 = BPF_DEVCG_DEV_CHAR;
    const B: u32 = BPF_DEVCG_DEV_BLOCK;

    #[test]
    fn filter_follows_last_matching_rule_per_access_bit() {
        let rules = normalize(&[
            rule(false, T::A, None, None, "rwm"),
            rule(true, T::C, Some(1), Some(3), "rwm"), // /dev/null
            rule(false, T::C, Some(1), Some(3), "w"),  // ...but not writable
            rule(true, T::C, Some(10), Some(229), "rw"),
            rule(true, T::A, None, None, "m"), // mknod anything
            rule(true, T::B, Some(8), None, "r"),
        ])
        .unwrap();
        let p = build_program(&rules, Path::new("/t")).unwrap();
        assert_eq!(run(&p, C, ACC_READ, 1, 3), 1);
        assert_eq!(run(&p, C, ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, C, ACC_READ | ACC_WRITE, 1, 3), 0);
        assert_eq!(run(&p, C, ACC_READ | ACC_WRITE, 10, 229), 1);
        assert_eq!(run(&p, C, ACC_READ, 1, 5), 0, "/dev/zero not listed");
        assert_eq!(run(&p, C, ACC_MKNOD, 4, 4), 1);
        assert_eq!(run(&p, B, ACC_MKNOD, 8, 1), 1);
        assert_eq!(run(&p, B, ACC_READ, 8, 1), 1);
        assert_eq!(run(&p, B, ACC_WRITE, 8, 1), 0);
        assert_eq!(run(&p, B, ACC_READ, 9, 0), 0);
    }

    #[test]
    fn allow_all_and_empty_rule_sets() {
        let all = normalize(&[rule(true, T::A, None, None, "rwm")]).unwrap();
        let p = build_program(&all, Path::new("/t")).unwrap();
        assert_eq!(run(&p, B, ACC_READ | ACC_WRITE | ACC_MKNOD, 259, 1), 1);
        // A deny after allow-all punches a hole.
        let hole = normalize(&[
            rule(true, T::A, None, None, "rwm"),
            rule(false, T::C, Some(1), Some(5), "r"),
        ])
        .unwrap();
        let p = build_program(&hole, Path::new("/t")).unwrap();
        assert_eq!(run(&p, C, ACC_READ, 1, 5), 0);
        assert_eq!(run(&p, C, ACC_WRITE, 1, 5), 1);
        let none = build_program(&[], Path::new("/t")).unwrap();
        assert_eq!(run(&none, C, ACC_READ, 1, 3), 0);
    }
}
