//! Reading CRI logs back for `peapod logs [-f] [--tail N] [--timestamps]`:
//! pieces (`P`) are joined into lines per stream, rotated files are read
//! oldest first, and follow mode keeps reading across rotations.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Entry, LogError, Stream, Tag, files, io_err};
use crate::time::format_rfc3339_nano;

/// One line of container output, its pieces joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When its first piece was read.
    pub time: SystemTime,
    pub stream: Stream,
    pub content: Vec<u8>,
    /// False when the output ended without a newline.
    pub complete: bool,
}

/// How `write_logs` prints.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Only the last N lines of what is already there.
    pub tail: Option<usize>,
    /// Prefix each line with its RFC 3339 timestamp (`--timestamps`).
    pub timestamps: bool,
    /// How many files the writer keeps (to find the rotated ones).
    pub max_files: usize,
}

/// Follow mode (`-f`): after printing what is there, keep printing new lines
/// every `poll` until `keep_going` says stop (the container ended); then
/// print what is left and return.
pub struct Follow<'a> {
    pub poll: Duration,
    pub keep_going: &'a mut dyn FnMut() -> bool,
}

/// Joins `P` pieces with the entry that completes them, per stream.
#[derive(Default)]
struct Joiner {
    pending: HashMap<Stream, (SystemTime, Vec<u8>)>,
}

impl Joiner {
    fn feed(&mut self, e: Entry) -> Option<LogLine> {
        let slot = self
            .pending
            .entry(e.stream)
            .or_insert_with(|| (e.time, Vec::new()));
        slot.1.extend_from_slice(&e.content);
        if e.tag == Tag::Partial {
            return None;
        }
        let (time, content) = self.pending.remove(&e.stream)?;
        Some(LogLine {
            time,
            stream: e.stream,
            content,
            complete: true,
        })
    }

    /// Pieces never completed (the output ended without a newline).
    fn flush(&mut self) -> Vec<LogLine> {
        let mut out: Vec<LogLine> = self
            .pending
            .drain()
            .map(|(stream, (time, content))| LogLine {
                time,
                stream,
                content,
                complete: false,
            })
            .collect();
        out.sort_by_key(|l| l.time);
        out
    }
}

/// Feeds the complete lines of `bytes` into `join`, keeps an unterminated
/// last line in `rest`. Malformed lines are skipped, as kubelet does.
fn feed_bytes(bytes: &[u8], rest: &mut Vec<u8>, join: &mut Joiner, out: &mut Vec<LogLine>) {
    rest.extend_from_slice(bytes);
    let Some(last_nl) = rest.iter().rposition(|&b| b == b'\n') else {
        return;
    };
    let tail = rest.split_off(last_nl + 1);
    for line in rest.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if let Ok(e) = Entry::parse(line) {
            out.extend(join.feed(e));
        }
    }
    *rest = tail;
}

/// Every line in the log's files, oldest first.
pub fn read_lines(path: &Path, max_files: usize) -> Result<Vec<LogLine>, LogError> {
    let mut reader = Reader::open(path, max_files)?;
    let mut out = reader.read_existing()?;
    out.extend(reader.join.flush());
    Ok(out)
}

/// How many listings `catch_up` takes, at most, looking for the file it
/// finished among the rotated ones.
const CATCH_UP_TRIES: u32 = 1000;

/// The files of a log at one moment: rotated ones oldest first, and the
/// current one.
struct Snapshot {
    rotated: Vec<(u64, File)>,
    current: Option<(u64, File)>,
}

impl Snapshot {
    fn inodes(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.rotated.iter().map(|(i, _)| *i).collect();
        v.push(self.current.as_ref().map_or(0, |(i, _)| *i));
        v
    }
}

/// Reads the rotated files once, then the current file as it grows.
struct Reader<'a> {
    path: &'a Path,
    max_files: usize,
    current: Option<File>,
    ino: u64,
    rest: Vec<u8>,
    join: Joiner,
}

impl<'a> Reader<'a> {
    fn open(path: &'a Path, max_files: usize) -> Result<Self, LogError> {
        let mut r = Reader {
            path,
            max_files,
            current: None,
            ino: 0,
            rest: Vec::new(),
            join: Joiner::default(),
        };
        r.reopen()?;
        Ok(r)
    }

    fn reopen(&mut self) -> Result<bool, LogError> {
        match File::open(self.path) {
            Ok(f) => {
                self.ino = f.metadata().map_err(io_err("log", self.path))?.ino();
                self.current = Some(f);
                self.rest.clear();
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("log", self.path)(e)),
        }
    }

    /// The rotated files, then the current one up to its end. The current
    /// file is opened first; a rotated file that is it (a rotation happened
    /// meanwhile) is skipped, so no line is read twice.
    fn read_existing(&mut self) -> Result<Vec<LogLine>, LogError> {
        let mut out = Vec::new();
        let all = files(self.path, self.max_files);
        for f in &all[..all.len() - 1] {
            let mut data = Vec::new();
            match File::open(f) {
                Ok(mut file) => {
                    let ino = file.metadata().map_err(io_err("log", f))?.ino();
                    if self.current.is_some() && ino == self.ino {
                        continue;
                    }
                    file.read_to_end(&mut data).map_err(io_err("log", f))?;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("log", f)(e)),
            }
            let mut rest = Vec::new();
            feed_bytes(&data, &mut rest, &mut self.join, &mut out);
        }
        self.read_new(&mut out)?;
        Ok(out)
    }

    /// After the current file was rotated: reads the rest of it (the writer
    /// may have appended between our last read and the rename), then the
    /// rotated files newer than it (several rotations within one poll), and
    /// makes the file now at `path` the current one. The files are opened
    /// from a listing seen twice in a row, so a rotation under way (a chain
    /// of renames) is not mistaken for the order of the files.
    fn catch_up(&mut self, out: &mut Vec<LogLine>) -> Result<(), LogError> {
        self.drain(out)?;
        // A listing taken while renames are under way can miss a file or
        // see one twice; one seen twice in a row, each file once, with the
        // finished file in it, is the real order. When the finished file
        // never shows up it was rotated out of the kept ones, and every
        // rotated file is newer than it.
        let mut last = self.snapshot()?;
        let mut tries = 0;
        let (mut rotated, current) = loop {
            let now = self.snapshot()?;
            let inodes = now.inodes();
            let mut unique = inodes.clone();
            unique.sort_unstable();
            unique.dedup();
            let stable = inodes == last.inodes() && unique.len() == inodes.len();
            let found = now.rotated.iter().any(|(ino, _)| *ino == self.ino);
            tries += 1;
            if stable && (found || tries >= CATCH_UP_TRIES) {
                break (now.rotated, now.current);
            }
            last = now;
            std::thread::yield_now();
        };
        let start = rotated
            .iter()
            .position(|(ino, _)| *ino == self.ino)
            .map_or(0, |i| i + 1);
        for (_, file) in &mut rotated[start..] {
            let mut data = Vec::new();
            file.read_to_end(&mut data)
                .map_err(io_err("log", self.path))?;
            let mut rest = Vec::new();
            feed_bytes(&data, &mut rest, &mut self.join, out);
        }
        self.rest.clear();
        match current {
            Some((ino, file)) => {
                self.ino = ino;
                self.current = Some(file);
            }
            None => {
                // Between a rotation's rename and the new file: the newest
                // rotated file is the last one read.
                if let Some((ino, _)) = rotated.last() {
                    self.ino = *ino;
                }
                self.current = None;
            }
        }
        Ok(())
    }

    /// The log's files, opened, with their inode numbers.
    fn snapshot(&self) -> Result<Snapshot, LogError> {
        let open = |f: &Path| -> Result<Option<(u64, File)>, LogError> {
            match File::open(f) {
                Ok(file) => {
                    let ino = file.metadata().map_err(io_err("log", f))?.ino();
                    Ok(Some((ino, file)))
                }
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err("log", f)(e)),
            }
        };
        let all = files(self.path, self.max_files);
        let mut rotated = Vec::new();
        for f in &all[..all.len() - 1] {
            rotated.extend(open(f)?);
        }
        Ok(Snapshot {
            rotated,
            current: open(self.path)?,
        })
    }

    /// Reads the current file from where the last read stopped.
    fn drain(&mut self, out: &mut Vec<LogLine>) -> Result<(), LogError> {
        let Some(f) = self.current.as_mut() else {
            return Ok(());
        };
        let pos = f.stream_position().map_err(io_err("log", self.path))?;
        let len = f.metadata().map_err(io_err("log", self.path))?.len();
        if len < pos {
            // Truncated in place (a writer keeping one file).
            f.seek(SeekFrom::Start(0))
                .map_err(io_err("log", self.path))?;
            self.rest.clear();
        }
        let mut data = Vec::new();
        f.read_to_end(&mut data).map_err(io_err("log", self.path))?;
        feed_bytes(&data, &mut self.rest, &mut self.join, out);
        Ok(())
    }

    /// What was appended to the current file since the last read, following
    /// it to the new file when it was rotated.
    fn read_new(&mut self, out: &mut Vec<LogLine>) -> Result<(), LogError> {
        loop {
            self.drain(out)?;
            let now = std::fs::metadata(self.path).map(|m| m.ino()).ok();
            match now {
                // The log appeared: a first file, or (caught between a
                // rotation's rename and the new file) the one after ours.
                Some(_) if self.current.is_none() && self.ino == 0 => {
                    self.reopen()?;
                }
                Some(_) if self.current.is_none() => self.catch_up(out)?,
                Some(ino) if ino != self.ino => self.catch_up(out)?,
                _ => return Ok(()),
            }
        }
    }
}

fn print<'a>(
    line: &LogLine,
    opts: &ReadOptions,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
) -> std::io::Result<()> {
    let to: &mut dyn Write = match line.stream {
        Stream::Stdout => out,
        Stream::Stderr => err,
    };
    if opts.timestamps {
        write!(to, "{} ", format_rfc3339_nano(line.time))?;
    }
    to.write_all(&line.content)?;
    if line.complete {
        to.write_all(b"\n")?;
    }
    to.flush()
}

/// Prints the log as `peapod logs` does: the container's stdout lines to
/// `out`, its stderr lines to `err`.
pub fn write_logs(
    path: &Path,
    opts: &ReadOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
    follow: Option<Follow<'_>>,
) -> Result<(), LogError> {
    let mut reader = Reader::open(path, opts.max_files)?;
    let mut lines = reader.read_existing()?;
    let stdout_err = |e| io_err("output of", path)(e);
    if follow.is_none() {
        lines.extend(reader.join.flush());
    }
    let skip = opts.tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in &lines[skip..] {
        print(line, opts, out, err).map_err(stdout_err)?;
    }
    let Some(follow) = follow else {
        return Ok(());
    };
    loop {
        let go = (follow.keep_going)();
        let mut new = Vec::new();
        reader.read_new(&mut new)?;
        if !go {
            new.extend(reader.join.flush());
        }
        for line in &new {
            print(line, opts, out, err).map_err(stdout_err)?;
        }
        if !go {
            return Ok(());
        }
        std::thread::sleep(follow.poll);
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
