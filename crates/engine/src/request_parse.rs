//! Docker's flag syntax parsed into the typed values of [`crate::request`]:
//! `FromStr` for each flag's type, plus the helpers for values that are not
//! a type of their own (byte sizes, `--cpus`, `--env`, `--env-file`,
//! `--security-opt`). Every error is one line naming the flag, the value and
//! the expected form.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::request::{
    IpcMode, NetworkMode, PidMode, PortMapping, Protocol, SeccompMode, SecurityOpts, TmpfsSpec,
    Ulimit, UsernsMode, UtsMode, VolumeSource, VolumeSpec,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("{flag} {value:?}: {expected}")]
    Invalid {
        flag: &'static str,
        value: String,
        expected: String,
    },
    #[error("--env-file {path}: {reason}")]
    EnvFile { path: PathBuf, reason: String },
}

fn invalid(flag: &'static str, value: &str, expected: impl Into<String>) -> RequestError {
    RequestError::Invalid {
        flag,
        value: value.to_string(),
        expected: expected.into(),
    }
}

/// Docker's rule for volume (and container) names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_volume_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

const VOLUME_FORM: &str =
    "expected /HOST:/CONTAINER[:ro|rw], NAME:/CONTAINER[:ro|rw] or /CONTAINER";

impl FromStr for VolumeSpec {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| invalid("--volume", s, format!("{why}; {VOLUME_FORM}"));
        let parts: Vec<&str> = s.split(':').collect();
        let (source, target, opts) = match parts.as_slice() {
            [t] => (None, *t, None),
            [src, t] => (Some(*src), *t, None),
            [src, t, o] => (Some(*src), *t, Some(*o)),
            _ => return Err(bad("too many ':'")),
        };
        if !target.starts_with('/') {
            return Err(bad("the container path must be absolute"));
        }
        if Path::new(target).components().count() <= 1 {
            return Err(bad("the container path may not be '/'"));
        }
        let mut read_only = false;
        if let Some(o) = opts {
            for opt in o.split(',') {
                match opt {
                    "ro" => read_only = true,
                    "rw" => read_only = false,
                    _ => return Err(bad(&format!("unknown option {opt:?} (ro or rw)"))),
                }
            }
        }
        let source = match source {
            None => VolumeSource::Anonymous,
            Some(src) if src.starts_with('/') => VolumeSource::Bind(PathBuf::from(src)),
            Some(src) if src.contains('/') || src.starts_with('.') || src.starts_with('~') => {
                return Err(bad("a host path must be absolute"));
            }
            Some(src) if valid_volume_name(src) => VolumeSource::Named(src.to_string()),
            Some(_) => {
                return Err(bad(
                    "a volume name must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (a host path must be absolute)",
                ));
            }
        };
        Ok(VolumeSpec {
            source,
            target: target.to_string(),
            read_only,
        })
    }
}

impl FromStr for TmpfsSpec {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (target, opts) = s.split_once(':').unwrap_or((s, ""));
        if !target.starts_with('/') || Path::new(target).components().count() <= 1 {
            return Err(invalid(
                "--tmpfs",
                s,
                "expected /CONTAINER[:OPTIONS] with an absolute path other than '/'",
            ));
        }
        let options: Vec<String> = opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect();
        Ok(TmpfsSpec {
            target: target.to_string(),
            options,
        })
    }
}

const PORT_FORM: &str =
    "expected [IP:][HOSTPORT:]CONTAINERPORT[/tcp|udp], e.g. 8080:80 or 127.0.0.1:8080:80/udp";

impl FromStr for PortMapping {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| invalid("--publish", s, format!("{why}; {PORT_FORM}"));
        let (rest, protocol) = match s.rsplit_once('/') {
            Some((r, "tcp")) => (r, Protocol::Tcp),
            Some((r, "udp")) => (r, Protocol::Udp),
            Some(_) => return Err(bad("the protocol must be tcp or udp")),
            None => (s, Protocol::Tcp),
        };
        let port = |p: &str, zero_ok: bool| -> Result<u16, RequestError> {
            if p.contains('-') {
                return Err(bad("port ranges are not supported"));
            }
            match p.parse::<u16>() {
                Ok(0) if !zero_ok => Err(bad("the container port must be 1-65535")),
                Ok(n) => Ok(n),
                Err(_) => Err(bad(&format!("{p:?} is not a port number (0-65535)"))),
            }
        };
        let (head, ctr) = match rest.rsplit_once(':') {
            Some((h, c)) => (Some(h), c),
            None => (None, rest),
        };
        let container_port = port(ctr, false)?;
        let (host_ip, host_port) = match head {
            None => (None, 0),
            Some(h) => {
                // The IP may be bracketed IPv6: [::1]:8080.
                let (ip, hp) = if let Some(inner) = h.strip_prefix('[') {
                    let (ip, after) = inner
                        .split_once(']')
                        .ok_or_else(|| bad("unclosed '[' around the IP"))?;
                    let hp = if after.is_empty() {
                        ""
                    } else {
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("expected ':' after ']'"))?
                    };
                    (Some(ip), hp)
                } else {
                    match h.rsplit_once(':') {
                        Some((ip, hp)) => (Some(ip), hp),
                        None => (None, h),
                    }
                };
                let ip = match ip {
                    None | Some("") => None,
                    Some(ip) => Some(
                        ip.parse::<IpAddr>()
                            .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?,
                    ),
                };
                let hp = if hp.is_empty() { 0 } else { port(hp, true)? };
                (ip, hp)
            }
        };
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }
}

impl FromStr for NetworkMode {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" | "default" => NetworkMode::Default,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            "bridge" => NetworkMode::Bridge(None),
            _ => {
                if let Some(p) = ns_path("--network", s)? {
                    NetworkMode::Namespace(p)
                } else if let Some(c) = s.strip_prefix("container:") {
                    if c.is_empty() {
                        return Err(invalid("--network", s, "expected container:NAME_OR_ID"));
                    }
                    NetworkMode::Container(c.to_string())
                } else if valid_volume_name(s) {
                    NetworkMode::Bridge(Some(s.to_string()))
                } else {
                    return Err(invalid(
                        "--network",
                        s,
                        "expected none, host, bridge, container:NAME or a network name",
                    ));
                }
            }
        })
    }
}

/// `ns:PATH` (Podman's form): the namespace file to join, an absolute path.
fn ns_path(flag: &'static str, s: &str) -> Result<Option<PathBuf>, RequestError> {
    match s.strip_prefix("ns:") {
        None => Ok(None),
        Some(p) if p.starts_with('/') => Ok(Some(PathBuf::from(p))),
        Some(_) => Err(invalid(
            flag,
            s,
            "expected ns:/ABSOLUTE/PATH of a namespace file",
        )),
    }
}

fn container_ref<'a>(flag: &'static str, s: &'a str, form: &str) -> Result<&'a str, RequestError> {
    match s.strip_prefix("container:") {
        Some(c) if !c.is_empty() => Ok(c),
        _ => Err(invalid(flag, s, format!("expected {form}"))),
    }
}

impl FromStr for IpcMode {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" | "private" => IpcMode::Private,
            "shareable" => IpcMode::Shareable,
            "host" => IpcMode::Host,
            _ if s.starts_with("ns:") => {
                IpcMode::Namespace(ns_path("--ipc", s)?.unwrap_or_default())
            }
            _ => IpcMode::Container(
                container_ref("--ipc", s, "private, shareable, host or container:NAME")?.into(),
            ),
        })
    }
}

impl FromStr for PidMode {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" | "private" => PidMode::Private,
            "host" => PidMode::Host,
            _ if s.starts_with("ns:") => {
                PidMode::Namespace(ns_path("--pid", s)?.unwrap_or_default())
            }
            _ => PidMode::Container(
                container_ref("--pid", s, "host or container:NAME (empty: private)")?.into(),
            ),
        })
    }
}

impl FromStr for UtsMode {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "private" => Ok(UtsMode::Private),
            "host" => Ok(UtsMode::Host),
            _ => Err(invalid("--uts", s, "expected host (empty: private)")),
        }
    }
}

impl FromStr for UsernsMode {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "host" => Ok(UsernsMode::Host),
            "auto" => Ok(UsernsMode::Auto),
            "keep-id" => Ok(UsernsMode::KeepId),
            _ => Err(invalid(
                "--userns",
                s,
                "expected host, auto or keep-id (empty: host)",
            )),
        }
    }
}

impl FromStr for SeccompMode {
    type Err = RequestError;

    /// The value of `--security-opt seccomp=VALUE`: `unconfined`, `default`
    /// or the path of a JSON profile.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unconfined" => Ok(SeccompMode::Unconfined),
            "default" | "builtin" => Ok(SeccompMode::Default),
            "" => Err(invalid(
                "--security-opt",
                "seccomp=",
                "expected seccomp=unconfined or seccomp=PROFILE.json",
            )),
            path => Ok(SeccompMode::File(PathBuf::from(path))),
        }
    }
}

impl SecurityOpts {
    /// Applies one `--security-opt` value: `seccomp=unconfined|PROFILE`,
    /// `no-new-privileges[=true|false]` (Docker's older `:` separator too).
    pub fn apply(&mut self, opt: &str) -> Result<(), RequestError> {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        match (key, value) {
            ("seccomp", Some(v)) => {
                self.seccomp = v.parse().map_err(|_| {
                    invalid(
                        "--security-opt",
                        opt,
                        "expected seccomp=unconfined or seccomp=PROFILE.json",
                    )
                })?
            }
            ("no-new-privileges", None | Some("true")) => self.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => self.no_new_privileges = false,
            _ => {
                return Err(invalid(
                    "--security-opt",
                    opt,
                    "expected seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges[=true|false]",
                ));
            }
        }
        Ok(())
    }
}

/// Docker's ulimit names and their rlimit resources.
pub const ULIMITS: &[(&str, &str)] = &[
    ("as", "RLIMIT_AS"),
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
];

/// `u64::MAX` stands for unlimited (`-1`).
pub const UNLIMITED: u64 = u64::MAX;

impl FromStr for Ulimit {
    type Err = RequestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let form = "expected NAME=SOFT[:HARD] (e.g. nofile=1024:2048, core=-1 for unlimited)";
        let (name, limits) = s
            .split_once('=')
            .ok_or_else(|| invalid("--ulimit", s, form))?;
        if !ULIMITS.iter().any(|(n, _)| *n == name) {
            let names: Vec<&str> = ULIMITS.iter().map(|(n, _)| *n).collect();
            return Err(invalid(
                "--ulimit",
                s,
                format!("unknown limit {name:?}; known: {}", names.join(", ")),
            ));
        }
        let num = |v: &str| -> Result<u64, RequestError> {
            if v == "-1" {
                return Ok(UNLIMITED);
            }
            v.parse::<u64>().map_err(|_| invalid("--ulimit", s, form))
        };
        let (soft, hard) = match limits.split_once(':') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let v = num(limits)?;
                (v, v)
            }
        };
        if soft > hard {
            return Err(invalid(
                "--ulimit",
                s,
                "the soft limit may not exceed the hard limit",
            ));
        }
        Ok(Ulimit {
            name: name.to_string(),
            soft,
            hard,
        })
    }
}

/// A byte size as Docker takes it (`512m`, `1g`, `1.5g`, `1024`, `64kb`):
/// binary units b, k, m, g, t, case-insensitive, an optional trailing `b`.
pub fn parse_bytes(flag: &'static str, s: &str) -> Result<u64, RequestError> {
    let bad = || {
        invalid(
            flag,
            s,
            "expected a size like 1024, 512m, 1.5g (units b, k, m, g, t)",
        )
    };
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let mult: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(bad());
    }
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    if frac.contains('.') || frac.len() > 9 {
        return Err(bad());
    }
    let frac_val: u64 = if frac.is_empty() {
        0
    } else {
        let scaled: u128 = frac.parse::<u128>().map_err(|_| bad())?;
        let denom = 10u128.pow(frac.len() as u32);
        u64::try_from(scaled * u128::from(mult) / denom).map_err(|_| bad())?
    };
    whole
        .checked_mul(mult)
        .and_then(|w| w.checked_add(frac_val))
        .ok_or_else(bad)
}

/// `--memory-swap`: a size, or -1 for unlimited.
pub fn parse_memory_swap(s: &str) -> Result<i64, RequestError> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    let n = parse_bytes("--memory-swap", s)?;
    i64::try_from(n).map_err(|_| invalid("--memory-swap", s, "the size is too large"))
}

/// `--cpus 1.5` → 1_500_000_000 nano CPUs (at most 9 decimals).
pub fn parse_cpus(s: &str) -> Result<u64, RequestError> {
    let bad = || invalid("--cpus", s, "expected a number of CPUs like 1, 0.5 or 2.25");
    let t = s.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if (whole.is_empty() && frac.is_empty())
        || frac.len() > 9
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut frac_n: u64 = 0;
    for (i, d) in frac.bytes().enumerate() {
        frac_n += u64::from(d - b'0') * 10u64.pow(8 - i as u32);
    }
    whole
        .checked_mul(1_000_000_000)
        .and_then(|w| w.checked_add(frac_n))
        .ok_or_else(bad)
}

fn check_env_key(flag: &'static str, entry: &str, key: &str) -> Result<(), RequestError> {
    if key.is_empty() {
        return Err(invalid(
            flag,
            entry,
            "expected KEY=VALUE or KEY (empty name)",
        ));
    }
    if key.chars().any(char::is_whitespace) {
        return Err(invalid(
            flag,
            entry,
            "the variable name may not contain whitespace",
        ));
    }
    Ok(())
}

/// One `-e` value: `KEY=VALUE` kept as given; `KEY` alone takes the value
/// from `lookup` (the caller's environment) and is dropped (None) when unset.
pub fn resolve_env(
    entry: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, RequestError> {
    match entry.split_once('=') {
        Some((k, _)) => {
            check_env_key("--env", entry, k)?;
            Ok(Some(entry.to_string()))
        }
        None => {
            check_env_key("--env", entry, entry)?;
            Ok(lookup(entry).map(|v| format!("{entry}={v}")))
        }
    }
}

/// The text of an `--env-file`: `KEY=VAL` lines, `KEY` alone taken from
/// `lookup` when set, `#` comments and blank lines skipped.
pub fn parse_env_file_str(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, RequestError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split_once('=').map_or(line.trim_end(), |(k, _)| k);
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(RequestError::EnvFile {
                path: path.to_path_buf(),
                reason: format!(
                    "line {}: {line:?} is not KEY=VALUE or KEY (names have no whitespace)",
                    n + 1
                ),
            });
        }
        if line.contains('=') {
            out.push(line.to_string());
        } else if let Some(v) = lookup(key) {
            out.push(format!("{key}={v}"));
        }
    }
    Ok(out)
}

/// Reads and parses an `--env-file`.
pub fn parse_env_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, RequestError> {
    let text = std::fs::read_to_string(path).map_err(|e| RequestError::EnvFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_env_file_str(path, &text, lookup)
}

/// The process environment as a lookup for [`resolve_env`] and [`parse_env_file`].
pub fn host_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn volumes() {
        let v: VolumeSpec = "/host:/ctr".parse().unwrap();
        assert_eq!(v.source, VolumeSource::Bind("/host".into()));
        assert_eq!(v.target, "/ctr");
        assert!(!v.read_only);
        let v: VolumeSpec = "data:/var/lib/x:ro".parse().unwrap();
        assert_eq!(v.source, VolumeSource::Named("data".into()));
        assert!(v.read_only);
        let v: VolumeSpec = "/anon".parse().unwrap();
        assert_eq!(v.source, VolumeSource::Anonymous);
        assert!("/a:/b:rw".parse::<VolumeSpec>().is_ok());
        for bad in [
            "rel/path:/ctr",
            "./x:/ctr",
            "/a:relative",
            "/a:/b:zz",
            "/a:/b:ro:x",
            "a:/b",
            "-x:/b",
            "/h:/",
            "",
        ] {
            let e = bad.parse::<VolumeSpec>().unwrap_err().to_string();
            assert!(e.starts_with("--volume"), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn tmpfs() {
        let t: TmpfsSpec = "/run:size=64m,mode=1777".parse().unwrap();
        assert_eq!(t.target, "/run");
        assert_eq!(t.options, vec!["size=64m", "mode=1777"]);
        let t: TmpfsSpec = "/tmp".parse().unwrap();
        assert!(t.options.is_empty());
        assert!("tmp".parse::<TmpfsSpec>().is_err());
        assert!("/".parse::<TmpfsSpec>().is_err());
    }

    #[test]
    fn ports() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!((p.host_ip, p.host_port, p.container_port), (None, 8080, 80));
        assert_eq!(p.protocol, Protocol::Tcp);
        let p: PortMapping = "127.0.0.1:8080:80/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(p.protocol, Protocol::Udp);
        let p: PortMapping = "80".parse().unwrap();
        assert_eq!((p.host_port, p.container_port), (0, 80));
        let p: PortMapping = ":80".parse().unwrap();
        assert_eq!((p.host_port, p.container_port), (0, 80));
        let p: PortMapping = "127.0.0.1::80".parse().unwrap();
        assert_eq!(p.host_port, 0);
        let p: PortMapping = "[::1]:8080:80".parse().unwrap();
        assert_eq!(p.host_ip, Some("::1".parse().unwrap()));
        for bad in [
            "",
            "x",
            "80/sctp",
            "0",
            "70000:80",
            "1.2.3:80:80",
            "8000-8001:80",
            "[::1:80:80",
        ] {
            let e = bad.parse::<PortMapping>().unwrap_err().to_string();
            assert!(e.starts_with("--publish"), "{bad}: {e}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!("none".parse::<NetworkMode>().unwrap(), NetworkMode::None);
        assert_eq!("host".parse::<NetworkMode>().unwrap(), NetworkMode::Host);
        assert_eq!("".parse::<NetworkMode>().unwrap(), NetworkMode::Default);
        assert_eq!(
            "bridge".parse::<NetworkMode>().unwrap(),
            NetworkMode::Bridge(None)
        );
        assert_eq!(
            "mynet".parse::<NetworkMode>().unwrap(),
            NetworkMode::Bridge(Some("mynet".into()))
        );
        assert_eq!(
            "container:web".parse::<NetworkMode>().unwrap(),
            NetworkMode::Container("web".into())
        );
        assert!("container:".parse::<NetworkMode>().is_err());
        assert!("bad name".parse::<NetworkMode>().is_err());
        assert_eq!("".parse::<IpcMode>().unwrap(), IpcMode::Private);
        assert_eq!("shareable".parse::<IpcMode>().unwrap(), IpcMode::Shareable);
        assert_eq!(
            "container:x".parse::<IpcMode>().unwrap(),
            IpcMode::Container("x".into())
        );
        assert!("bogus".parse::<IpcMode>().is_err());
        assert_eq!("".parse::<PidMode>().unwrap(), PidMode::Private);
        assert_eq!("host".parse::<PidMode>().unwrap(), PidMode::Host);
        assert!(
            "x".parse::<PidMode>()
                .unwrap_err()
                .to_string()
                .starts_with("--pid")
        );
        assert_eq!("host".parse::<UtsMode>().unwrap(), UtsMode::Host);
        assert!("x".parse::<UtsMode>().is_err());
        assert_eq!("".parse::<UsernsMode>().unwrap(), UsernsMode::Host);
        assert_eq!("auto".parse::<UsernsMode>().unwrap(), UsernsMode::Auto);
        assert_eq!("keep-id".parse::<UsernsMode>().unwrap(), UsernsMode::KeepId);
        assert!("x".parse::<UsernsMode>().is_err());
    }

    #[test]
    fn security_opts() {
        let mut s = SecurityOpts::default();
        s.apply("seccomp=unconfined").unwrap();
        assert_eq!(s.seccomp, SeccompMode::Unconfined);
        s.apply("seccomp=/etc/p.json").unwrap();
        assert_eq!(s.seccomp, SeccompMode::File("/etc/p.json".into()));
        s.apply("no-new-privileges").unwrap();
        assert!(s.no_new_privileges);
        s.apply("no-new-privileges:false").unwrap();
        assert!(!s.no_new_privileges);
        assert!(s.apply("seccomp=").is_err());
        assert!(
            s.apply("apparmor=x")
                .unwrap_err()
                .to_string()
                .contains("apparmor")
        );
    }

    #[test]
    fn ulimits() {
        let u: Ulimit = "nofile=1024:2048".parse().unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        let u: Ulimit = "core=-1".parse().unwrap();
        assert_eq!((u.soft, u.hard), (UNLIMITED, UNLIMITED));
        let u: Ulimit = "nproc=10".parse().unwrap();
        assert_eq!((u.soft, u.hard), (10, 10));
        for bad in [
            "nofile",
            "bogus=1",
            "nofile=x",
            "nofile=10:5",
            "nofile=1:2:3",
        ] {
            let e = bad.parse::<Ulimit>().unwrap_err().to_string();
            assert!(e.starts_with("--ulimit"), "{bad}: {e}");
        }
    }

    #[test]
    fn bytes() {
        let b = |s| parse_bytes("--memory", s);
        assert_eq!(b("1024"), Ok(1024));
        assert_eq!(b("512m"), Ok(512 << 20));
        assert_eq!(b("1g"), Ok(1 << 30));
        assert_eq!(b("1G"), Ok(1 << 30));
        assert_eq!(b("1.5g"), Ok(3 << 29));
        assert_eq!(b("64kb"), Ok(64 << 10));
        assert_eq!(b("10b"), Ok(10));
        for bad in ["", "m", "1x", "-1", "1.2.3m", ".5g", "99999999999999t"] {
            let e = b(bad).unwrap_err().to_string();
            assert!(e.starts_with("--memory"), "{bad}: {e}");
        }
        assert_eq!(parse_memory_swap("-1"), Ok(-1));
        assert_eq!(parse_memory_swap("1g"), Ok(1 << 30));
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("0.25"), Ok(250_000_000));
        assert_eq!(parse_cpus(".5"), Ok(500_000_000));
        for bad in ["", "x", "-1", "1.0000000001", "1e3"] {
            assert!(parse_cpus(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env() {
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(resolve_env("A=b", &lookup), Ok(Some("A=b".into())));
        assert_eq!(resolve_env("HOME", &lookup), Ok(Some("HOME=/root".into())));
        assert_eq!(resolve_env("UNSET", &lookup), Ok(None));
        assert!(resolve_env("=x", &lookup).is_err());
        assert!(resolve_env("A B=x", &no_env).is_err());
        let text = "# comment\n\nA=1\n  B=two words\nHOME\nUNSET\nC=\n";
        let got = parse_env_file_str(Path::new("f.env"), text, &lookup).unwrap();
        assert_eq!(got, vec!["A=1", "B=two words", "HOME=/root", "C="]);
        let e = parse_env_file_str(Path::new("f.env"), "BAD KEY=1\n", &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.env") && e.contains("line 1"), "{e}");
        let e = parse_env_file(Path::new("/nonexistent/env"), &no_env).unwrap_err();
        assert!(e.to_string().starts_with("--env-file /nonexistent/env"));
    }
}
