//! One run of a pod container, watched by the pod's supervisor itself: the
//! supervisor (a subreaper) is the container's parent, copies its output
//! into the CRI log as it comes, and records its end. No process is made
//! per container, so a pod costs its supervisor and its infra process.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use pea_runtime::CreateOptions;

use crate::containers::{Engine, EngineError};
use crate::logs::{Entry, LineSplitter, LogWriter, Stream};
use crate::monitor::start_failure_code;
use crate::record::{ProcRef, State};
use crate::supervisor::{LogConfig, SupervisorError, sys};

/// How long output still written after the main process ended is copied.
const DRAIN: Duration = Duration::from_secs(2);

/// A container's output stream as the supervisor reads it.
struct Output {
    stream: Stream,
    /// The read end (non-blocking), or a terminal's master.
    from: File,
    split: LineSplitter,
}

/// A running container of the pod.
pub(super) struct Run {
    /// The container's index in the pod's plan.
    pub index: usize,
    pub cid: String,
    /// Its main process (host pid).
    pub pid: i32,
    /// When it was started (before its first output).
    pub started: SystemTime,
    outputs: Vec<Output>,
    log: LogWriter,
    /// What the container reads with `stdin: true`: the write end is held
    /// open (nobody attaches to pod containers), so reads wait instead of
    /// seeing the end of input; or the terminal's master with `tty: true`.
    _input: Option<OwnedFd>,
}

/// Why a run could not start, and the exit code Docker and kubelet give it.
pub(super) struct StartFailure {
    pub code: i32,
    pub reason: String,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SupervisorError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("make a pipe"))
}

fn non_blocking(fd: &impl AsFd) -> Result<(), SupervisorError> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(sys("read a pipe's flags"))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(sys("make a pipe non-blocking"))?;
    Ok(())
}

/// Creates and starts container `cid` (index `index` of the pod) with its
/// output going to its CRI log. A container that cannot start is recorded
/// as exited with Docker's code (127: no such command, 126: cannot run it).
pub(super) fn start(
    engine: &Engine,
    index: usize,
    cid: &str,
) -> Result<Result<Run, StartFailure>, EngineError> {
    let (record, ()) = engine.store.update_quick(cid, |r| {
        r.state = State::Created;
        r.supervisor = ProcRef::current();
        r.monitor = ProcRef::current();
    })?;
    let cfg = LogConfig::default();
    let log = LogWriter::open(&record.log_path, cfg.max_size, cfg.max_files)
        .map_err(SupervisorError::from)?;
    let mut opts = CreateOptions {
        id: cid.to_string(),
        bundle: record.setup.bundle.clone(),
        ..Default::default()
    };
    let mut outputs = Vec::new();
    let output = |stream, from: File| Output {
        stream,
        from,
        split: LineSplitter::new(cfg.max_line),
    };
    // Created, or why not; from creation on, a failure deletes the
    // container again before it is recorded.
    let (created, input): (Result<i32, String>, _) = if record.setup.tty {
        let path = engine.socket(cid).with_extension("console");
        let _ = std::fs::create_dir_all(engine.paths.sockets());
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(|e| sys("bind the console socket")(io_errno(&e)))?;
        opts.console_socket = Some(path.clone());
        // The container sends its terminal during create; the connection
        // waits in the listener's backlog until it is accepted here.
        let created = engine
            .runtime
            .create(&opts)
            .map_err(|e| e.to_string())
            .and_then(|pid| {
                let master = listener
                    .accept()
                    .ok()
                    .and_then(|(conn, _)| pea_runtime::console::receive_master(&conn).ok())
                    .ok_or("the container sent no terminal")?;
                let out = non_blocking(&master)
                    .ok()
                    .and_then(|()| master.try_clone().ok())
                    .ok_or("cannot read the container's terminal")?;
                outputs.push(output(Stream::Stdout, File::from(out)));
                Ok((pid, master))
            });
        let _ = std::fs::remove_file(&path);
        match created {
            Ok((pid, master)) => (Ok(pid), Some(master)),
            Err(e) => (Err(e), None),
        }
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        non_blocking(&out_r)?;
        non_blocking(&err_r)?;
        let (stdin, input) = if record.setup.interactive {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            let null = File::open("/dev/null").map_err(|e| sys("open /dev/null")(io_errno(&e)))?;
            (OwnedFd::from(null), None)
        };
        let created = engine
            .runtime
            .create_with_stdio(&opts, [stdin.as_fd(), out_w.as_fd(), err_w.as_fd()])
            .map_err(|e| e.to_string());
        // Only the container holds the write ends now: its end is EOF.
        drop((stdin, out_w, err_w));
        outputs.push(output(Stream::Stdout, File::from(out_r)));
        outputs.push(output(Stream::Stderr, File::from(err_r)));
        (created, input)
    };
    let pid = match created {
        Ok(pid) => pid,
        Err(reason) => {
            let _ = engine.runtime.delete(cid, true);
            return failed(engine, cid, &reason);
        }
    };
    // Taken before the start: the first line of output is not older.
    let started = SystemTime::now();
    if let Err(e) = engine.runtime.start(cid) {
        let _ = engine.runtime.delete(cid, true);
        return failed(engine, cid, &e.to_string());
    }
    let recorded = engine.store.update_quick(cid, |r| {
        r.state = State::Running {
            pid,
            started_at: started,
        };
        r.note_start(crate::time::format_rfc3339_nano(started));
    });
    if let Err(e) = recorded {
        let _ = engine.runtime.delete(cid, true);
        return Err(e.into());
    }
    Ok(Ok(Run {
        index,
        cid: cid.to_string(),
        pid,
        started,
        outputs,
        log,
        _input: input,
    }))
}

fn io_errno(e: &std::io::Error) -> nix::Error {
    nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Records a run that could not start as exited with Docker's code.
fn failed(
    engine: &Engine,
    cid: &str,
    reason: &str,
) -> Result<Result<Run, StartFailure>, EngineError> {
    let code = start_failure_code(reason);
    engine.store.update(cid, |r| {
        r.state = State::Exited {
            code,
            oom_killed: false,
            finished_at: SystemTime::now(),
        };
        r.monitor = None;
    })?;
    Ok(Err(StartFailure {
        code,
        reason: reason.to_string(),
    }))
}

impl Run {
    /// The output descriptors still open, by position.
    pub fn outputs(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.outputs.iter().map(|o| o.from.as_fd())
    }

    /// Copies what output `n` has to give now into the log, using `buf`;
    /// at its end (or a read error) the stream is closed.
    pub fn pump(&mut self, n: usize, buf: &mut [u8]) {
        let Some(out) = self.outputs.get_mut(n) else {
            return;
        };
        let ended = loop {
            match out.from.read(buf) {
                Ok(0) => break true,
                Ok(got) => {
                    let pieces = out.split.push(&buf[..got]);
                    write(&mut self.log, out.stream, pieces);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                // A terminal's master reads EIO once the container's
                // side is closed: that is its end of file.
                Err(_) => break true,
            }
        };
        if ended {
            let out = self.outputs.remove(n);
            let mut split = out.split;
            write(
                &mut self.log,
                out.stream,
                split.finish().into_iter().collect(),
            );
        }
    }

    /// The main process ended with `code`: the container goes from the
    /// runtime, what it wrote is copied, and its end is recorded durably.
    pub fn finish(mut self, engine: &Engine, code: i32, buf: &mut [u8]) -> Result<(), EngineError> {
        let finished_at = SystemTime::now();
        let oom_killed = engine.runtime.oom_kill_count(&self.cid).unwrap_or(0) > 0;
        // Whatever is left of it goes now (with a shared PID namespace its
        // children may outlive it); their write ends close with them.
        let _ = engine.runtime.delete(&self.cid, true);
        // Output still in the pipes is copied, until every writer is gone
        // (or DRAIN: something outside the container may hold a pipe).
        let deadline = Instant::now() + DRAIN;
        while !self.outputs.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let ready: Vec<usize> = {
                let mut fds: Vec<PollFd> = self
                    .outputs()
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
                    .collect();
                let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(0) | Err(_) => Vec::new(),
                    Ok(_) => (0..fds.len())
                        .filter(|&n| fds[n].any().unwrap_or(true))
                        .collect(),
                }
            };
            if ready.is_empty() {
                break;
            }
            for n in ready.into_iter().rev() {
                self.pump(n, buf);
            }
        }
        let _ = self.log.sync();
        engine.store.update(&self.cid, |r| {
            r.state = State::Exited {
                code,
                oom_killed,
                finished_at,
            };
            r.monitor = None;
        })?;
        Ok(())
    }
}

fn write(log: &mut LogWriter, stream: Stream, pieces: Vec<(crate::logs::Tag, Vec<u8>)>) {
    if pieces.is_empty() {
        return;
    }
    let time = SystemTime::now();
    for (tag, content) in pieces {
        // A full disk must not stop the pod: the line is lost, as a
        // container runtime's log driver drops it.
        let _ = log.write(&Entry {
            time,
            stream,
            tag,
            content,
        });
    }
}
