//! Container logs in the Kubernetes CRI log format, one entry per line:
//!
//! ```text
//! 2016-10-06T00:17:09.669794202Z stdout F The content of the log entry 1
//! 2016-10-06T00:17:10.113242941Z stderr P First line of log entry 2
//! 2016-10-06T00:17:10.113242941Z stderr F Second line of the log entry 2
//! ```
//!
//! `F` ends a line; `P` is a piece of a longer one (a line over the buffer
//! size, or output that ended without a newline), continued by the next
//! entry of the same stream. `writer` splits output into entries and rotates
//! files by size; `reader` tails and follows them for `peapod logs`.

mod reader;
mod writer;

pub use reader::{Follow, LogLine, ReadOptions, read_lines, write_logs};
pub use writer::{
    DEFAULT_MAX_FILES, DEFAULT_MAX_LINE, DEFAULT_MAX_SIZE, LineSplitter, LogWriter, copy_stream,
    copy_stream_with,
};

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::time::{format_rfc3339_nano, parse_rfc3339};

/// Which output of the container an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Whether an entry ends its line (`F`) or is a piece of one (`P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Full,
    Partial,
}

impl Tag {
    fn as_str(self) -> &'static str {
        match self {
            Tag::Full => "F",
            Tag::Partial => "P",
        }
    }
}

/// One parsed line of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: SystemTime,
    pub stream: Stream,
    pub tag: Tag,
    /// Without the trailing newline.
    pub content: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("malformed CRI log line {0:?}: expected 'TIMESTAMP STREAM P|F CONTENT'")]
    Malformed(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> LogError + 'a {
    move |source| LogError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl Entry {
    /// The entry as one line of a log file, newline included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() + 48);
        out.extend_from_slice(format_rfc3339_nano(self.time).as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.stream.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.tag.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.content);
        out.push(b'\n');
        out
    }

    /// Parses one line (with or without its newline). Accepts any
    /// RFC3339Nano timestamp, as kubelet does.
    pub fn parse(line: &[u8]) -> Result<Entry, LogError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let bad = || LogError::Malformed(String::from_utf8_lossy(line).into_owned());
        let mut parts = line.splitn(4, |&b| b == b' ');
        let time = parts.next().ok_or_else(bad)?;
        let stream = parts.next().ok_or_else(bad)?;
        let tag = parts.next().ok_or_else(bad)?;
        // A full empty line is "... stdout F " or, from some writers, "... stdout F".
        let content = parts.next().unwrap_or_default();
        let time = std::str::from_utf8(time)
            .ok()
            .and_then(parse_rfc3339)
            .ok_or_else(bad)?;
        let stream = match stream {
            b"stdout" => Stream::Stdout,
            b"stderr" => Stream::Stderr,
            _ => return Err(bad()),
        };
        let tag = match tag {
            b"F" => Tag::Full,
            b"P" => Tag::Partial,
            _ => return Err(bad()),
        };
        Ok(Entry {
            time,
            stream,
            tag,
            content: content.to_vec(),
        })
    }
}

/// The files of a log, oldest first: `log.{max_files-1}` ... `log.1`, `log`.
pub fn files(path: &Path, max_files: usize) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..max_files.max(1))
        .rev()
        .map(|n| rotated(path, n))
        .collect();
    out.push(path.to_path_buf());
    out
}

/// `log.N`.
pub(crate) fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    /// The example of the CRI logging proposal
    /// (kubernetes/design-proposals-archive node/kubelet-cri-logging.md).
    #[test]
    fn encodes_the_cri_proposal_example() {
        let e = Entry {
            time: at(1_475_713_029, 669_794_202),
            stream: Stream::Stdout,
            tag: Tag::Full,
            content: b"The content of the log entry 1".to_vec(),
        };
        assert_eq!(
            String::from_utf8(e.encode()).unwrap(),
            "2016-10-06T00:17:09.669794202Z stdout F The content of the log entry 1\n"
        );
        let p = Entry {
            time: at(1_475_713_030, 113_242_941),
            stream: Stream::Stderr,
            tag: Tag::Partial,
            content: b"First line of log entry 2".to_vec(),
        };
        assert_eq!(
            String::from_utf8(p.encode()).unwrap(),
            "2016-10-06T00:17:10.113242941Z stderr P First line of log entry 2\n"
        );
    }

    /// Lines as kubelet's own parser tests give them (pkg/kubelet/kuberuntime/logs).
    #[test]
    fn parses_kubelet_test_lines() {
        let e =
            Entry::parse(b"2016-10-20T18:39:20.57606443Z stdout F cri log content 1\n").unwrap();
        assert_eq!(e.time, at(1_476_988_760, 576_064_430));
        assert_eq!(e.stream, Stream::Stdout);
        assert_eq!(e.tag, Tag::Full);
        assert_eq!(e.content, b"cri log content 1");
        let p = Entry::parse(b"2016-10-20T18:39:20.57606443Z stderr P cri log content 2").unwrap();
        assert_eq!((p.stream, p.tag), (Stream::Stderr, Tag::Partial));
        // Content keeps its own spaces.
        let s = Entry::parse(b"2016-10-20T18:39:20.57606443Z stdout F  two  spaces ").unwrap();
        assert_eq!(s.content, b" two  spaces ");
        let empty = Entry::parse(b"2016-10-20T18:39:20.57606443Z stdout F \n").unwrap();
        assert!(empty.content.is_empty());
        let bare = Entry::parse(b"2016-10-20T18:39:20.57606443Z stdout F").unwrap();
        assert!(bare.content.is_empty());
        for bad in [
            &b"2016-10-20T18:39:20.57606443Z stdin F x"[..],
            b"2016-10-20T18:39:20.57606443Z stdout X x",
            b"yesterday stdout F x",
            b"",
        ] {
            assert!(
                Entry::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn encode_parse_round_trip() {
        let e = Entry {
            time: at(1_700_000_000, 1),
            stream: Stream::Stderr,
            tag: Tag::Partial,
            content: b"\xff binary \t bytes".to_vec(),
        };
        assert_eq!(Entry::parse(&e.encode()).unwrap(), e);
    }

    #[test]
    fn file_order_is_oldest_first() {
        let p = Path::new("/x/container.log");
        assert_eq!(
            files(p, 3),
            [
                PathBuf::from("/x/container.log.2"),
                PathBuf::from("/x/container.log.1"),
                PathBuf::from("/x/container.log"),
            ]
        );
        assert_eq!(files(p, 1), [PathBuf::from("/x/container.log")]);
    }
}
