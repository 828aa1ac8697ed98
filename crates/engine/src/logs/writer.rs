//! Splitting a stream into CRI entries, and writing them with size-based
//! rotation.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::{Entry, LogError, Stream, Tag, io_err, rotated};

/// Longest line written as one entry; longer ones become P pieces (as
/// containerd's 16 KiB buffer).
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;
/// Rotate when the current file would grow past this (kubelet: 10 MiB).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Files kept: the current one and `log.1` ... (kubelet: 5).
pub const DEFAULT_MAX_FILES: usize = 5;

/// Cuts one stream's bytes into entries: a full line is `F`, a line longer
/// than `max_line` is cut into `P` pieces, and output that ends without a
/// newline ends with a `P` entry.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max_line: max_line.max(1),
        }
    }

    /// Feeds bytes; returns the entries they complete.
    pub fn push(&mut self, mut data: &[u8]) -> Vec<(Tag, Vec<u8>)> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let room = self.max_line - self.buf.len();
            let window = &data[..data.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&window[..i]);
                    out.push((Tag::Full, std::mem::take(&mut self.buf)));
                    data = &data[i + 1..];
                }
                None => {
                    self.buf.extend_from_slice(window);
                    data = &data[window.len()..];
                    if self.buf.len() == self.max_line {
                        // A newline right after a full buffer still ends
                        // the line: wait for the next byte to decide.
                        if data.first() == Some(&b'\n') {
                            out.push((Tag::Full, std::mem::take(&mut self.buf)));
                            data = &data[1..];
                        } else if !data.is_empty() {
                            out.push((Tag::Partial, std::mem::take(&mut self.buf)));
                        }
                    }
                }
            }
        }
        out
    }

    /// The stream ended: what is left, as a `P` entry.
    pub fn finish(&mut self) -> Option<(Tag, Vec<u8>)> {
        (!self.buf.is_empty()).then(|| (Tag::Partial, std::mem::take(&mut self.buf)))
    }
}

/// Appends entries to a log file, rotating by size: `log` -> `log.1` ->
/// ... -> `log.{max_files-1}`, the oldest dropped.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    max_size: u64,
    max_files: usize,
    file: File,
    size: u64,
}

impl LogWriter {
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> Result<Self, LogError> {
        let file = open_append(path)?;
        let size = file.metadata().map_err(io_err("log", path))?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            max_size: max_size.max(1),
            max_files: max_files.max(1),
            file,
            size,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one entry (one line), rotating first when it would not fit.
    pub fn write(&mut self, entry: &Entry) -> Result<(), LogError> {
        let line = entry.encode();
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file
            .write_all(&line)
            .map_err(io_err("log", &self.path))?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// Flushes the file to disk (at container exit).
    pub fn sync(&self) -> Result<(), LogError> {
        self.file.sync_data().map_err(io_err("log", &self.path))
    }

    fn rotate(&mut self) -> Result<(), LogError> {
        if self.max_files == 1 {
            self.file.set_len(0).map_err(io_err("log", &self.path))?;
            self.size = 0;
            return Ok(());
        }
        for n in (1..self.max_files - 1).rev() {
            let from = rotated(&self.path, n);
            match fs::rename(&from, rotated(&self.path, n + 1)) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_err("log", &from)(e)),
                _ => {}
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1)).map_err(io_err("log", &self.path))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err("log", path))
}

/// Copies a container's stream into the log until end of file, stamping each
/// entry with the time its bytes were read. Two streams may share a writer.
pub fn copy_stream(
    from: impl Read,
    stream: Stream,
    to: &Mutex<LogWriter>,
    max_line: usize,
) -> Result<(), LogError> {
    copy_stream_with(from, stream, to, max_line, &mut |_| {})
}

/// `copy_stream`, also handing every chunk read to `tee` as it comes (to
/// attached clients).
pub fn copy_stream_with(
    mut from: impl Read,
    stream: Stream,
    to: &Mutex<LogWriter>,
    max_line: usize,
    tee: &mut dyn FnMut(&[u8]),
) -> Result<(), LogError> {
    let mut split = LineSplitter::new(max_line);
    let mut buf = vec![0u8; 32 * 1024];
    let write = |pieces: Vec<(Tag, Vec<u8>)>| -> Result<(), LogError> {
        if pieces.is_empty() {
            return Ok(());
        }
        let time = SystemTime::now();
        let mut w = to.lock().unwrap_or_else(|p| p.into_inner());
        for (tag, content) in pieces {
            w.write(&Entry {
                time,
                stream,
                tag,
                content,
            })?;
        }
        Ok(())
    };
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                let path = to.lock().unwrap_or_else(|p| p.into_inner()).path.clone();
                return Err(io_err("container output for", &path)(e));
            }
        };
        tee(&buf[..n]);
        write(split.push(&buf[..n]))?;
    }
    write(split.finish().into_iter().collect())
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
