//! One line of `ps` per container, worded as Docker words it: "Up 3
//! seconds", "Exited (0) 5 seconds ago", "0.0.0.0:8080->80/tcp".

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Engine, Status};
use crate::record::Record;
use crate::request::{PortMapping, Protocol};
use crate::time::format_rfc3339_nano;

/// What `ps` shows of one container (`--format json` keys as Docker's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary {
    pub id: String,
    pub names: String,
    pub image: String,
    /// The command, unquoted and untruncated.
    pub command: String,
    /// RFC 3339.
    pub created: String,
    /// "5 seconds ago".
    pub running_for: String,
    /// Docker's State word: created, running, restarting, exited.
    pub state: String,
    /// "Up 3 seconds", "Exited (0) 5 seconds ago"...
    pub status: String,
    /// "127.0.0.1:18080->80/tcp, ...".
    pub ports: String,
    pub exit_code: Option<i32>,
    /// Running or restarting.
    #[serde(skip)]
    pub active: bool,
}

impl Engine {
    /// The `ps` line of `record`, as of now.
    pub fn summary(&self, record: &Record) -> Summary {
        let view = self.view(record);
        let now = SystemTime::now();
        let mut status = status_text(&view.status, now);
        if view.unsupervised() {
            status.push_str(" (supervisor died)");
        }
        let exit_code = match view.status {
            Status::Exited { code, .. } => Some(code),
            Status::Restarting { exit_code, .. } => Some(exit_code),
            _ => None,
        };
        Summary {
            id: record.id.clone(),
            names: record.name.clone(),
            image: record.image.clone(),
            command: record.command.join(" "),
            created: format_rfc3339_nano(record.created),
            running_for: format!("{} ago", human_duration(since(record.created, now))),
            state: view.status.word().to_string(),
            status,
            ports: record
                .setup
                .network
                .as_ref()
                .map(|a| ports_text(&a.ports))
                .unwrap_or_default(),
            exit_code,
            active: view.status.is_active(),
        }
    }
}

fn since(t: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or_default()
}

/// Docker's STATUS column.
pub fn status_text(status: &Status, now: SystemTime) -> String {
    match *status {
        Status::Created => "Created".into(),
        Status::Running { started_at, .. } => {
            format!("Up {}", human_duration(since(started_at, now)))
        }
        Status::Restarting {
            exit_code,
            finished_at,
        } => format!(
            "Restarting ({exit_code}) {} ago",
            human_duration(since(finished_at, now))
        ),
        Status::Exited {
            code, finished_at, ..
        } => format!(
            "Exited ({code}) {} ago",
            human_duration(since(finished_at, now))
        ),
    }
}

/// Docker's `HumanDuration`: "Less than a second", "5 seconds", "About a
/// minute", "About an hour", "3 days"...
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let minutes = secs / 60;
    let hours = (d.as_secs_f64() / 3600.0 + 0.5) as u64;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", secs / 3600 / 24 / 365),
    }
}

/// "0.0.0.0:8080->80/tcp, 127.0.0.1:53->53/udp".
pub fn ports_text(ports: &[PortMapping]) -> String {
    ports
        .iter()
        .map(|p| {
            let ip = p
                .host_ip
                .map(|i| i.to_string())
                .unwrap_or_else(|| "0.0.0.0".into());
            format!(
                "{ip}:{}->{}/{}",
                p.host_port,
                p.container_port,
                protocol(p.protocol)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn protocol(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_dockers() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(5)), "5 seconds");
        assert_eq!(human_duration(s(61)), "About a minute");
        assert_eq!(human_duration(s(150)), "2 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(3 * 3600)), "3 hours");
        assert_eq!(human_duration(s(3 * 86_400)), "3 days");
        assert_eq!(human_duration(s(20 * 86_400)), "2 weeks");
        assert_eq!(human_duration(s(90 * 86_400)), "3 months");
        assert_eq!(human_duration(s(800 * 86_400)), "2 years");
    }

    #[test]
    fn statuses_and_ports() {
        let now = SystemTime::now();
        let ago = now - Duration::from_secs(5);
        assert_eq!(status_text(&Status::Created, now), "Created");
        assert_eq!(
            status_text(
                &Status::Running {
                    pid: 1,
                    started_at: ago
                },
                now
            ),
            "Up 5 seconds"
        );
        assert_eq!(
            status_text(
                &Status::Exited {
                    code: 3,
                    oom_killed: false,
                    finished_at: ago
                },
                now
            ),
            "Exited (3) 5 seconds ago"
        );
        assert_eq!(
            status_text(
                &Status::Restarting {
                    exit_code: 1,
                    finished_at: ago
                },
                now
            ),
            "Restarting (1) 5 seconds ago"
        );
        let ports = [
            PortMapping {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 18080,
                container_port: 80,
                protocol: Protocol::Tcp,
            },
            PortMapping {
                host_ip: None,
                host_port: 53,
                container_port: 53,
                protocol: Protocol::Udp,
            },
        ];
        assert_eq!(
            ports_text(&ports),
            "127.0.0.1:18080->80/tcp, 0.0.0.0:53->53/udp"
        );
    }
}
