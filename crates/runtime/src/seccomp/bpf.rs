//! Classic BPF as the kernel reads it, and the ENOSYS stub put in front of
//! libseccomp's program.
//!
//! Why the stub: libseccomp only knows the syscalls of its release, and a
//! syscall newer than the profile gets the default action, typically EPERM.
//! A libc that tries a new syscall first (clone3, fchmodat2, ...) falls back
//! to the old one only on ENOSYS, so with EPERM the call just fails. As runc
//! does, every syscall numbered above the highest one the profile names (per
//! architecture) answers ENOSYS, as it would on a kernel without it.

/// One `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

/// SECCOMP_RET_ERRNO | ENOSYS.
pub const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
/// The bit x32 syscall numbers carry on AUDIT_ARCH_X86_64.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_S390: u32 = 0x0000_0016;
const AUDIT_ARCH_S390X: u32 = 0x8000_0016;

/// Parses what `seccomp_export_bpf` wrote (host byte order).
pub fn parse(bytes: &[u8]) -> Option<Vec<Insn>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| Insn {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// The highest syscall number the profile names on one kernel architecture
/// (AUDIT_ARCH_*). x86_64 and x32 share AUDIT_ARCH_X86_64 and are told apart
/// by [`X32_SYSCALL_BIT`], so they get one max each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchMax {
    pub audit_arch: u32,
    /// Highest syscall without the x32 bit (None: no check for them).
    pub max: Option<u32>,
    /// Highest x32 syscall, bit included (only for AUDIT_ARCH_X86_64).
    pub max_x32: Option<u32>,
}

/// A jump target while assembling.
#[derive(Clone, Copy)]
enum To {
    Next,
    Skip(u8),
    Enosys,
    Filter,
    Section(usize),
}

struct Op {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn op(code: u16, k: u32, jt: To, jf: To) -> Op {
    Op { code, k, jt, jf }
}

/// The stub to prepend, ending where the original program starts. Syscalls
/// of architectures not listed fall through to the program unchanged.
pub fn enosys_stub(arches: &[ArchMax]) -> Vec<Insn> {
    let arches: Vec<&ArchMax> = arches
        .iter()
        .filter(|a| a.max.is_some() || a.max_x32.is_some())
        .collect();
    if arches.is_empty() {
        return Vec::new();
    }
    let mut ops = vec![op(LD_W_ABS, OFF_ARCH, To::Next, To::Next)];
    for (i, a) in arches.iter().enumerate() {
        ops.push(op(JEQ, a.audit_arch, To::Section(i), To::Next));
    }
    ops.push(op(JA, 0, To::Filter, To::Filter));
    let mut sections = Vec::new();
    for a in &arches {
        sections.push(ops.len());
        ops.push(op(LD_W_ABS, OFF_NR, To::Next, To::Next));
        if a.audit_arch == AUDIT_ARCH_S390 || a.audit_arch == AUDIT_ARCH_S390X {
            // Unknown syscalls reach the filter as setup(2) (nr 0) there.
            ops.push(op(JEQ, 0, To::Enosys, To::Next));
        }
        let x86_64 = a.audit_arch == AUDIT_ARCH_X86_64;
        match (a.max, a.max_x32) {
            (Some(max), Some(max_x32)) if x86_64 => {
                ops.push(op(JSET, X32_SYSCALL_BIT, To::Skip(1), To::Next));
                ops.push(op(JGT, max, To::Enosys, To::Filter));
                ops.push(op(JGT, max_x32, To::Enosys, To::Filter));
            }
            (Some(max), _) => {
                if x86_64 {
                    ops.push(op(JSET, X32_SYSCALL_BIT, To::Filter, To::Next));
                }
                ops.push(op(JGT, max, To::Enosys, To::Filter));
            }
            (None, Some(max_x32)) => {
                ops.push(op(JSET, X32_SYSCALL_BIT, To::Next, To::Filter));
                ops.push(op(JGT, max_x32, To::Enosys, To::Filter));
            }
            (None, None) => unreachable!("filtered above"),
        }
    }
    let enosys = ops.len();
    ops.push(op(RET, RET_ENOSYS, To::Next, To::Next));
    let filter = ops.len();
    let target = |pc: usize, to: To| -> usize {
        match to {
            To::Next => pc + 1,
            To::Skip(n) => pc + 1 + n as usize,
            To::Enosys => enosys,
            To::Filter => filter,
            To::Section(i) => sections[i],
        }
    };
    ops.iter()
        .enumerate()
        .map(|(pc, o)| {
            let rel = |to| {
                let d = target(pc, to) - (pc + 1);
                u8::try_from(d).expect("the stub is far shorter than 256 instructions")
            };
            match o.code {
                JA => Insn {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: (target(pc, o.jt) - (pc + 1)) as u32,
                },
                JEQ | JGT | JSET => Insn {
                    code: o.code,
                    jt: rel(o.jt),
                    jf: rel(o.jf),
                    k: o.k,
                },
                code => Insn {
                    code,
                    jt: 0,
                    jf: 0,
                    k: o.k,
                },
            }
        })
        .collect()
}

/// Runs `prog` on one syscall the way the kernel would and returns the
/// action value (for tests of the stub and of compiled profiles).
#[cfg(test)]
pub(crate) fn run(prog: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut acc, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        pc += 1;
        let class = i.code & 0x07;
        let src_x = i.code & 0x08 != 0;
        match class {
            0x00 | 0x01 => {
                // BPF_LD / BPF_LDX
                let v = match i.code & 0xe0 {
                    0x20 => {
                        let o = i.k as usize;
                        u32::from_ne_bytes(data[o..o + 4].try_into().unwrap_or([0; 4]))
                    }
                    0x00 => i.k,                      // BPF_IMM
                    0x60 => mem[(i.k & 15) as usize], // BPF_MEM
                    0x80 => 64,                       // BPF_LEN
                    _ => 0,
                };
                if class == 0x00 {
                    acc = v;
                } else {
                    x = v;
                }
            }
            0x02 => mem[(i.k & 15) as usize] = acc, // BPF_ST
            0x03 => mem[(i.k & 15) as usize] = x,   // BPF_STX
            0x04 => {
                // BPF_ALU
                let v = if src_x { x } else { i.k };
                acc = match i.code & 0xf0 {
                    0x00 => acc.wrapping_add(v),
                    0x10 => acc.wrapping_sub(v),
                    0x20 => acc.wrapping_mul(v),
                    0x30 => acc.checked_div(v).unwrap_or(0),
                    0x40 => acc | v,
                    0x50 => acc & v,
                    0x60 => acc.wrapping_shl(v),
                    0x70 => acc.wrapping_shr(v),
                    0x80 => acc.wrapping_neg(),
                    0xa0 => acc ^ v,
                    _ => acc,
                };
            }
            0x05 => {
                // BPF_JMP
                let v = if src_x { x } else { i.k };
                let taken = match i.code & 0xf0 {
                    0x00 => {
                        pc += i.k as usize;
                        continue;
                    }
                    0x10 => acc == v,
                    0x20 => acc > v,
                    0x30 => acc >= v,
                    0x40 => acc & v != 0,
                    _ => false,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            0x06 => return if i.code & 0x18 == 0x10 { acc } else { i.k }, // BPF_RET
            0x07 => {
                // BPF_MISC: TAX / TXA
                if i.code & 0xf8 == 0 {
                    x = acc;
                } else {
                    acc = x;
                }
            }
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = 0x7fff_0000;
    const FILTER_END: Insn = Insn {
        code: RET,
        jt: 0,
        jf: 0,
        k: ALLOW,
    };

    fn with_filter(stub: Vec<Insn>) -> Vec<Insn> {
        let mut p = stub;
        p.push(FILTER_END);
        p
    }

    #[test]
    fn x86_64_and_x32_get_their_own_limits() {
        let p = with_filter(enosys_stub(&[
            ArchMax {
                audit_arch: AUDIT_ARCH_X86_64,
                max: Some(450),
                max_x32: Some(X32_SYSCALL_BIT | 547),
            },
            ArchMax {
                audit_arch: 0x4000_0003,
                max: Some(450),
                max_x32: None,
            },
        ]));
        let a = AUDIT_ARCH_X86_64;
        assert_eq!(run(&p, a, 0, [0; 6]), ALLOW);
        assert_eq!(run(&p, a, 450, [0; 6]), ALLOW);
        assert_eq!(run(&p, a, 451, [0; 6]), RET_ENOSYS);
        assert_eq!(run(&p, a, X32_SYSCALL_BIT | 547, [0; 6]), ALLOW);
        assert_eq!(run(&p, a, X32_SYSCALL_BIT | 548, [0; 6]), RET_ENOSYS);
        assert_eq!(run(&p, 0x4000_0003, 451, [0; 6]), RET_ENOSYS);
        assert_eq!(run(&p, 0x4000_0003, 3, [0; 6]), ALLOW);
        // Another architecture goes to the filter untouched.
        assert_eq!(run(&p, 0xc000_00b7, 9999, [0; 6]), ALLOW);
    }

    #[test]
    fn x86_64_alone_leaves_x32_to_the_filter() {
        let p = with_filter(enosys_stub(&[ArchMax {
            audit_arch: AUDIT_ARCH_X86_64,
            max: Some(100),
            max_x32: None,
        }]));
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 101, [0; 6]), RET_ENOSYS);
        assert_eq!(
            run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 999, [0; 6]),
            ALLOW
        );
    }

    #[test]
    fn no_limits_no_stub() {
        assert!(enosys_stub(&[]).is_empty());
    }

    #[test]
    fn parse_round_trip() {
        let i = Insn {
            code: JGT,
            jt: 3,
            jf: 4,
            k: 0xdead_beef,
        };
        let mut b = Vec::new();
        b.extend_from_slice(&i.code.to_ne_bytes());
        b.push(i.jt);
        b.push(i.jf);
        b.extend_from_slice(&i.k.to_ne_bytes());
        assert_eq!(parse(&b), Some(vec![i]));
        assert_eq!(parse(&b[..7]), None);
    }
}
