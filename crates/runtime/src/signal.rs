//! Signal names and numbers as `kill` accepts them: TERM, SIGTERM, 15, RTMIN+3.

use nix::sys::signal::Signal;

#[derive(Debug, thiserror::Error)]
#[error("unknown signal {0:?}: use a name like TERM or SIGKILL, or a number 1-64")]
pub struct SignalError(pub String);

/// A signal number accepted by the kernel (1..=64), including real-time ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalNumber(i32);

impl SignalNumber {
    pub fn raw(self) -> i32 {
        self.0
    }

    pub fn parse(text: &str) -> Result<Self, SignalError> {
        let err = || SignalError(text.to_string());
        let t = text.trim();
        if let Ok(n) = t.parse::<i32>() {
            return if (1..=64).contains(&n) {
                Ok(Self(n))
            } else {
                Err(err())
            };
        }
        let upper = t.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(rest) = name.strip_prefix("RTMIN") {
            let off: i32 = if rest.is_empty() {
                0
            } else {
                rest.strip_prefix('+')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(err)?
            };
            let n = libc::SIGRTMIN() + off;
            return if off >= 0 && n <= libc::SIGRTMAX() {
                Ok(Self(n))
            } else {
                Err(err())
            };
        }
        if let Some(rest) = name.strip_prefix("RTMAX") {
            let off: i32 = if rest.is_empty() {
                0
            } else {
                rest.strip_prefix('-')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(err)?
            };
            let n = libc::SIGRTMAX() - off;
            return if off >= 0 && n >= libc::SIGRTMIN() {
                Ok(Self(n))
            } else {
                Err(err())
            };
        }
        let full = format!("SIG{name}");
        full.parse::<Signal>()
            .map(|s| Self(s as i32))
            .map_err(|_| err())
    }
}

impl From<Signal> for SignalNumber {
    fn from(s: Signal) -> Self {
        Self(s as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for (t, n) in [
            ("TERM", 15),
            ("SIGKILL", 9),
            ("kill", 9),
            ("15", 15),
            ("hup", 1),
        ] {
            assert_eq!(SignalNumber::parse(t).unwrap().raw(), n, "{t}");
        }
        assert_eq!(
            SignalNumber::parse("RTMIN+2").unwrap().raw(),
            libc::SIGRTMIN() + 2
        );
        for bad in ["0", "65", "NOPE", "SIGRTMIN+99", ""] {
            assert!(SignalNumber::parse(bad).is_err(), "{bad}");
        }
    }
}
