//! `top`: the processes of a running container, read from /proc for the
//! pids of its cgroup, in `ps -ef`'s columns (as `docker top` shows them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Engine, EngineError, Status};

/// `ps -ef`'s header.
pub const TOP_TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

/// One process, its columns in [`TOP_TITLES`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRow {
    pub uid: String,
    pub pid: i32,
    pub ppid: i32,
    /// Percent of one CPU over its lifetime.
    pub c: u64,
    pub stime: String,
    pub tty: String,
    pub time: String,
    pub cmd: String,
}

impl ProcessRow {
    pub fn columns(&self) -> [String; 8] {
        [
            self.uid.clone(),
            self.pid.to_string(),
            self.ppid.to_string(),
            self.c.to_string(),
            self.stime.clone(),
            self.tty.clone(),
            self.time.clone(),
            self.cmd.clone(),
        ]
    }
}

impl Engine {
    /// The processes of running container `key`.
    pub fn top(&self, key: &str) -> Result<Vec<ProcessRow>, EngineError> {
        let record = self.store.resolve(key)?;
        let view = self.view(&record);
        if !matches!(view.status, Status::Running { .. }) {
            return Err(EngineError::WrongState {
                name: record.name.clone(),
                state: view.status.word().into(),
                fix: "start it first: only a running container has processes",
            });
        }
        let pids = self.runtime.pids(&record.id)?;
        let clock = ticks_per_second();
        let boot = boot_time();
        Ok(pids
            .into_iter()
            .filter_map(|pid| process_row(pid, clock, boot))
            .collect())
    }
}

fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|v| *v > 0)
        .map(|v| v as u64)
        .unwrap_or(100)
}

/// Seconds since the epoch at boot (`btime` of /proc/stat).
fn boot_time() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

fn process_row(pid: i32, clock: u64, boot: u64) -> Option<ProcessRow> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?.to_string();
    // Fields after the command, from field 3 (state) on.
    let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    let ppid = f.get(1)?.parse().ok()?;
    let tty_nr = num(7).unwrap_or(0);
    let cpu_ticks = num(14).unwrap_or(0) + num(15).unwrap_or(0);
    let start_ticks = num(22).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let started = boot + start_ticks / clock;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let lifetime = now.saturating_sub(started).max(1);
    let cpu_secs = cpu_ticks / clock;
    Some(ProcessRow {
        uid: user,
        pid,
        ppid,
        c: (cpu_ticks * 100 / clock) / lifetime,
        stime: stime(started, now),
        tty: tty_name(tty_nr),
        time: format!(
            "{:02}:{:02}:{:02}",
            cpu_secs / 3600,
            cpu_secs / 60 % 60,
            cpu_secs % 60
        ),
        cmd,
    })
}

/// HH:MM (UTC) when started in the last day, else "Mon DD".
fn stime(started: u64, now: u64) -> String {
    if now.saturating_sub(started) < 86_400 {
        let s = started % 86_400;
        return format!("{:02}:{:02}", s / 3600, s / 60 % 60);
    }
    let date = crate::time::format_rfc3339_nano(UNIX_EPOCH + Duration::from_secs(started));
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = date[5..7].parse().unwrap_or(1);
    format!("{}{}", MONTHS[month.clamp(1, 12) - 1], &date[8..10])
}

fn tty_name(tty_nr: u64) -> String {
    if tty_nr == 0 {
        return "?".into();
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", minor + (major - 136) * 256),
        4 => format!("tty{minor}"),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_like_ps() {
        let me = std::process::id() as i32;
        let row = process_row(me, ticks_per_second(), boot_time()).unwrap();
        assert_eq!(row.pid, me);
        assert_eq!(row.ppid, nix::unistd::getppid().as_raw());
        assert!(!row.cmd.is_empty());
        assert_eq!(row.time.len(), 8);
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        assert_eq!(stime(86_400 + 3600 + 120, 86_400 + 7200), "01:02");
        assert_eq!(stime(0, 10 * 86_400), "Jan01");
    }
}
