//! Device allow/deny rules, normalized for both cgroup v1 files and the v2
//! eBPF filter.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::controller::invalid;
use super::error::Result;

/// Access bits, numbered as the kernel's BPF_DEVCG_ACC_* constants.
pub(crate) const ACC_MKNOD: u32 = 1;
pub(crate) const ACC_READ: u32 = 2;
pub(crate) const ACC_WRITE: u32 = 4;
pub(crate) const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevKind {
    /// Every device of every type with every access ("a" in v1).
    All,
    Char,
    Block,
}

/// One rule in a form both backends can express exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub(crate) allow: bool,
    pub(crate) kind: DevKind,
    pub(crate) major: Option<u32>,
    pub(crate) minor: Option<u32>,
    /// ACC_* bits.
    pub(crate) access: u32,
}

impl DeviceRule {
    /// The line written to devices.allow / devices.deny on v1.
    pub(crate) fn v1_line(&self) -> String {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
        let kind = match self.kind {
            DevKind::All => return "a".to_string(),
            DevKind::Char => 'c',
            DevKind::Block => 'b',
        };
        let mut acc = String::new();
        for (bit, ch) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                acc.push(ch);
            }
        }
        format!("{kind} {}:{} {acc}", num(self.major), num(self.minor))
    }
}

/// Validate and normalize OCI rules, keeping their order. A type "a" rule
/// that names a device or a partial access is split into a "c" and a "b"
/// rule, because v1 treats any "a" line as "everything".
pub(crate) fn normalize(rules: &[LinuxDeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let field = format!("devices[{i}]");
        let number = |v: Option<i64>, what: &str| -> Result<Option<u32>> {
            match v {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                    invalid(
                        &format!("{field}.{what}"),
                        n,
                        "device numbers must fit in 32 bits",
                    )
                }),
            }
        };
        let major = number(r.major(), "major")?;
        let minor = number(r.minor(), "minor")?;
        let access_str = r.access().as_deref().unwrap_or("");
        let mut access = 0;
        for ch in access_str.chars() {
            access |= match ch {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => {
                    return Err(invalid(
                        &format!("{field}.access"),
                        access_str,
                        "only the letters r, w and m are allowed",
                    ));
                }
            };
        }
        if access == 0 {
            // Unset access means every access, as in crun and youki.
            access = ACC_ALL;
        }
        let kinds: &[DevKind] = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A if major.is_none() && minor.is_none() && access == ACC_ALL => {
                &[DevKind::All]
            }
            LinuxDeviceType::A => &[DevKind::Char, DevKind::Block],
            LinuxDeviceType::C | LinuxDeviceType::U => &[DevKind::Char],
            LinuxDeviceType::B => &[DevKind::Block],
            LinuxDeviceType::P => {
                return Err(invalid(
                    &format!("{field}.type"),
                    "p",
                    "FIFOs are not subject to the device cgroup; use \"a\", \"b\" or \"c\"",
                ));
            }
        };
        for &kind in kinds {
            out.push(DeviceRule {
                allow: r.allow(),
                kind,
                major,
                minor,
                access,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    pub(crate) fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    #[test]
    fn normalizes_and_formats_v1_lines() {
        let rules = vec![
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rw"),
            rule(true, LinuxDeviceType::A, None, None, "m"),
            rule(true, LinuxDeviceType::B, Some(8), None, ""),
        ];
        let n = normalize(&rules).unwrap();
        let lines: Vec<String> = n.iter().map(DeviceRule::v1_line).collect();
        assert_eq!(
            lines,
            vec!["a", "c 1:3 rw", "c *:* m", "b *:* m", "b 8:* rwm"]
        );
        assert!(!n[0].allow);
    }

    #[test]
    fn rejects_bad_rules() {
        let bad_access = rule(true, LinuxDeviceType::C, Some(1), Some(3), "rx");
        let err = normalize(&[bad_access]).unwrap_err().to_string();
        assert!(err.contains("devices[0].access"), "{err}");
        let fifo = rule(true, LinuxDeviceType::P, None, None, "r");
        assert!(normalize(&[fifo]).is_err());
        let huge = rule(true, LinuxDeviceType::C, Some(1 << 40), None, "r");
        assert!(normalize(&[huge]).is_err());
    }
}
