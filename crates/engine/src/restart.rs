//! Restart policies (`--restart`, Docker syntax) and the back-off between
//! restarts: 10 s doubling to a 5 min cap, back to 10 s after a run of
//! 10 min or more. Pure: the caller passes in how long the container ran.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The first delay, and the one after a reset.
pub const INITIAL_DELAY: Duration = Duration::from_secs(10);
/// The delay never grows past this.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// A run at least this long resets the delay to `INITIAL_DELAY`.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// What to do when the container's process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name")]
pub enum RestartPolicy {
    /// Never restart (Docker's default).
    #[default]
    No,
    /// Restart after a non-zero exit; at most `max_retries` times when set.
    OnFailure { max_retries: Option<u32> },
    /// Always restart, unless stopped by the user; restarted again when the
    /// engine comes back even if it was stopped.
    Always,
    /// As `Always`, but a container the user stopped stays stopped.
    UnlessStopped,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "invalid restart policy {0:?}: use no, on-failure, on-failure:N, always or unless-stopped"
    )]
    Unknown(String),
    #[error("invalid restart policy {0:?}: the retry count must be a whole number >= 0")]
    BadCount(String),
    #[error(
        "invalid restart policy {0:?}: only on-failure takes a maximum retry count (on-failure:N)"
    )]
    CountNotAllowed(String),
}

impl FromStr for RestartPolicy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let policy = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let max_retries = match count {
                    None => None,
                    Some(c) => match c.parse::<u32>() {
                        // As Docker: on-failure:0 means no limit.
                        Ok(0) => None,
                        Ok(n) => Some(n),
                        Err(_) => return Err(PolicyError::BadCount(s.into())),
                    },
                };
                return Ok(RestartPolicy::OnFailure { max_retries });
            }
            _ => return Err(PolicyError::Unknown(s.into())),
        };
        match count {
            Some(_) => Err(PolicyError::CountNotAllowed(s.into())),
            None => Ok(policy),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { max_retries: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl RestartPolicy {
    /// Whether the supervisor restarts a container whose process just ended
    /// with `exit_code`, after `restarts` restarts so far. A container the
    /// user stopped (`stop`, `kill`) is never restarted by its supervisor.
    pub fn should_restart(self, exit_code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max_retries } => {
                exit_code != 0 && max_retries.is_none_or(|max| restarts < max)
            }
        }
    }

    /// Whether a stopped container is started again when peapod comes back
    /// up (after a reboot): `always` even when the user stopped it,
    /// `unless-stopped` only when the user did not.
    pub fn start_on_boot(self, stopped_by_user: bool) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !stopped_by_user,
            RestartPolicy::No | RestartPolicy::OnFailure { .. } => false,
        }
    }
}

/// The back-off state of one container, kept in its record across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Backoff {
    /// The delay used before the previous restart; None before the first.
    pub last_delay: Option<Duration>,
}

impl Backoff {
    /// The delay before the next restart of a process that ran for `ran_for`:
    /// 10 s, then doubling up to 5 min; a run of 10 min or more starts the
    /// sequence over.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        let delay = match self.last_delay {
            Some(prev) if ran_for < RESET_AFTER => (prev * 2).min(MAX_DELAY),
            _ => INITIAL_DELAY,
        };
        self.last_delay = Some(delay);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> u64 {
        d.as_secs()
    }

    #[test]
    fn parses_docker_syntax() {
        let ok = [
            ("no", RestartPolicy::No),
            ("", RestartPolicy::No),
            ("always", RestartPolicy::Always),
            ("unless-stopped", RestartPolicy::UnlessStopped),
            ("on-failure", RestartPolicy::OnFailure { max_retries: None }),
            (
                "on-failure:3",
                RestartPolicy::OnFailure {
                    max_retries: Some(3),
                },
            ),
            (
                "on-failure:0",
                RestartPolicy::OnFailure { max_retries: None },
            ),
        ];
        for (s, want) in ok {
            assert_eq!(s.parse::<RestartPolicy>(), Ok(want), "{s:?}");
        }
        assert_eq!(
            "sometimes".parse::<RestartPolicy>(),
            Err(PolicyError::Unknown("sometimes".into()))
        );
        assert_eq!(
            "on-failure:-1".parse::<RestartPolicy>(),
            Err(PolicyError::BadCount("on-failure:-1".into()))
        );
        assert_eq!(
            "on-failure:x".parse::<RestartPolicy>(),
            Err(PolicyError::BadCount("on-failure:x".into()))
        );
        assert_eq!(
            "always:3".parse::<RestartPolicy>(),
            Err(PolicyError::CountNotAllowed("always:3".into()))
        );
        let msg = "sometimes"
            .parse::<RestartPolicy>()
            .unwrap_err()
            .to_string();
        assert!(msg.contains("on-failure:N"), "{msg}");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:5",
        ] {
            assert_eq!(s.parse::<RestartPolicy>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn decides_restarts() {
        let p = RestartPolicy::OnFailure {
            max_retries: Some(3),
        };
        assert!(p.should_restart(1, 0, false));
        assert!(p.should_restart(1, 2, false));
        assert!(!p.should_restart(1, 3, false), "exactly three restarts");
        assert!(!p.should_restart(0, 0, false), "success is not a failure");
        assert!(!p.should_restart(1, 0, true));
        let unlimited = RestartPolicy::OnFailure { max_retries: None };
        assert!(unlimited.should_restart(137, 1000, false));
        assert!(RestartPolicy::Always.should_restart(0, 50, false));
        assert!(!RestartPolicy::Always.should_restart(0, 0, true));
        assert!(RestartPolicy::UnlessStopped.should_restart(2, 0, false));
        assert!(!RestartPolicy::No.should_restart(1, 0, false));
        assert!(RestartPolicy::Always.start_on_boot(true));
        assert!(!RestartPolicy::UnlessStopped.start_on_boot(true));
        assert!(RestartPolicy::UnlessStopped.start_on_boot(false));
        assert!(!RestartPolicy::No.start_on_boot(false));
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let mut b = Backoff::default();
        let quick = Duration::from_secs(1);
        let seq: Vec<u64> = (0..7).map(|_| secs(b.next_delay(quick))).collect();
        assert_eq!(seq, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn backoff_resets_after_ten_minutes_of_running() {
        let mut b = Backoff::default();
        for _ in 0..4 {
            b.next_delay(Duration::from_secs(5));
        }
        assert_eq!(b.last_delay, Some(Duration::from_secs(80)));
        // Just short of ten minutes: keeps growing.
        assert_eq!(
            secs(b.next_delay(RESET_AFTER - Duration::from_millis(1))),
            160
        );
        // Ten minutes exactly: back to the start, then doubling again.
        assert_eq!(secs(b.next_delay(RESET_AFTER)), 10);
        assert_eq!(secs(b.next_delay(Duration::from_secs(30))), 20);
    }
}
