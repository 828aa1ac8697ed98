//! The monitor: one run of one container. It is the parent (and subreaper)
//! of the container's processes; it copies their output into the CRI log
//! and to attached clients, feeds attached input to them, waits for the end
//! and records the exit code and OOM kill durably.
//!
//! It runs in a process of its own, a child of the container's supervisor,
//! so that killing either one loses nothing: the monitor records the exit
//! whether or not its supervisor lives, and the supervisor (a subreaper)
//! inherits and reaps the container when the monitor is gone.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::OFlag;
use pea_runtime::{CreateOptions, Runtime};

use crate::attach::proto::Kind;
use crate::attach::server::Hub;
use crate::logs::{self, LogWriter, Stream};
use crate::record::{ProcRef, State, Store};
use crate::supervisor::{Exit, LogConfig, SupervisorError, sys};

/// How long a foreground run waits for its client to attach before it
/// starts the container anyway.
const ATTACH_WAIT: Duration = Duration::from_secs(30);
/// How long output still written by leftover processes is copied after the
/// container's main process ended.
const DRAIN: Duration = Duration::from_secs(2);

/// One run of a container.
#[derive(Debug, Clone)]
pub struct MonitorSpec {
    pub runtime: Runtime,
    pub store: Store,
    pub id: String,
    pub bundle: PathBuf,
    pub socket: PathBuf,
    pub log: LogConfig,
    pub tty: bool,
    pub interactive: bool,
    /// Start only once a client has attached (a foreground `run`).
    pub wait_attach: bool,
}

/// What the monitor tells whoever launched it, one JSON line per event, on
/// the descriptor it was given.
pub struct Ready(Option<File>);

impl Ready {
    pub fn new(to: Option<File>) -> Self {
        Ready(to)
    }

    pub fn send(&mut self, event: serde_json::Value) {
        if let Some(f) = &mut self.0 {
            let mut line = event.to_string();
            line.push('\n');
            if f.write_all(line.as_bytes()).is_err() {
                self.0 = None;
            }
        }
    }

    pub fn close(&mut self) {
        self.0 = None;
    }
}

/// The exit code Docker gives a container that could not start.
pub fn start_failure_code(reason: &str) -> i32 {
    let r = reason.to_ascii_lowercase();
    if r.contains("no such file") || r.contains("not found") {
        127
    } else if r.contains("permission denied") || r.contains("exec format") {
        126
    } else {
        125
    }
}

fn io_sys(what: &'static str) -> impl FnOnce(std::io::Error) -> SupervisorError {
    move |e| SupervisorError::Sys {
        what,
        source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// The container's stdio as the monitor holds it.
struct Stdio {
    /// Given to the runtime (non-terminal runs).
    child: Option<[OwnedFd; 3]>,
    /// Output to copy: (stream, read end).
    outputs: Vec<(Stream, File)>,
    /// Where attached input goes.
    input: Option<File>,
    /// The terminal master (for resizes).
    master: Option<OwnedFd>,
    console: Option<(UnixListener, PathBuf)>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SupervisorError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("make a pipe"))
}

fn plain_stdio(interactive: bool) -> Result<Stdio, SupervisorError> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin, input) = if interactive {
        let (r, w) = pipe()?;
        (r, Some(File::from(w)))
    } else {
        let null = File::open("/dev/null").map_err(io_sys("open /dev/null"))?;
        (OwnedFd::from(null), None)
    };
    Ok(Stdio {
        child: Some([stdin, out_w, err_w]),
        outputs: vec![
            (Stream::Stdout, File::from(out_r)),
            (Stream::Stderr, File::from(err_r)),
        ],
        input,
        master: None,
        console: None,
    })
}

fn terminal_stdio(spec: &MonitorSpec) -> Result<Stdio, SupervisorError> {
    let path = spec.socket.with_extension("console");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(io_sys("bind the console socket"))?;
    Ok(Stdio {
        child: None,
        outputs: Vec::new(),
        input: None,
        master: None,
        console: Some((listener, path)),
    })
}

/// Runs the container once: create, (wait for a client,) start, copy,
/// wait, record. Always removes the container from the runtime before it
/// returns. Errors before the start are recorded as an exit too.
pub fn run(spec: &MonitorSpec, ready: &mut Ready) -> Result<Exit, SupervisorError> {
    pea_runtime::become_subreaper().map_err(sys("become subreaper"))?;
    let (record, ()) = spec
        .store
        .update_quick(&spec.id, |r| r.monitor = ProcRef::current())?;
    let writer = Arc::new(Mutex::new(LogWriter::open(
        &record.log_path,
        spec.log.max_size,
        spec.log.max_files,
    )?));
    let _ = std::fs::remove_file(&spec.socket);
    let listener = UnixListener::bind(&spec.socket).map_err(io_sys("bind the attach socket"))?;
    let mut stdio = if spec.tty {
        terminal_stdio(spec)?
    } else {
        plain_stdio(spec.interactive)?
    };
    let opts = CreateOptions {
        id: spec.id.clone(),
        bundle: spec.bundle.clone(),
        console_socket: stdio.console.as_ref().map(|(_, p)| p.clone()),
        ..Default::default()
    };
    let created = match stdio.child.take() {
        Some(fds) => {
            let r = spec
                .runtime
                .create_with_stdio(&opts, [fds[0].as_fd(), fds[1].as_fd(), fds[2].as_fd()]);
            // Only the container holds the write ends now: its end is EOF.
            drop(fds);
            r
        }
        None => {
            let (listener, _) = stdio
                .console
                .as_ref()
                .expect("terminal runs have a console");
            std::thread::scope(|s| {
                let got = s.spawn(|| {
                    let (conn, _) = listener.accept().ok()?;
                    pea_runtime::console::receive_master(&conn).ok()
                });
                let r = spec.runtime.create(&opts);
                if r.is_err() {
                    // Unblock the accept: nobody will send a terminal now.
                    let _ = std::os::unix::net::UnixStream::connect(
                        &stdio.console.as_ref().expect("set").1,
                    );
                }
                let master = got.join().ok().flatten();
                r.map(|pid| (pid, master))
            })
            .and_then(|(pid, master)| {
                let master = master.ok_or_else(|| pea_runtime::ContainerError::StartFailed {
                    id: spec.id.clone(),
                    reason: "the container sent no terminal".into(),
                })?;
                let m = File::from(master);
                let dup = |f: &File| f.try_clone().map_err(|e| e.raw_os_error());
                if let (Ok(out), Ok(input), Ok(tty)) = (dup(&m), dup(&m), dup(&m)) {
                    stdio.outputs.push((Stream::Stdout, out));
                    stdio.input = Some(input);
                    stdio.master = Some(OwnedFd::from(tty));
                }
                Ok(pid)
            })
        }
    };
    if let Some((_, path)) = stdio.console.take() {
        let _ = std::fs::remove_file(path);
    }
    let pid = match created {
        Ok(pid) => pid,
        Err(e) => {
            let reason = e.to_string();
            drop(listener);
            return fail_start(spec, ready, None, &reason);
        }
    };
    let hub = Hub::new(stdio.input.take(), stdio.master.take());
    hub.serve(listener);
    ready.send(serde_json::json!({ "event": "created", "pid": pid }));
    if spec.wait_attach {
        hub.wait_attached(ATTACH_WAIT);
    }
    // Taken before the start: the first line of output is not older.
    let started = SystemTime::now();
    if let Err(e) = spec.runtime.start(&spec.id) {
        let _ = spec.runtime.delete(&spec.id, true);
        return fail_start(spec, ready, Some(&hub), &e.to_string());
    }
    spec.store.update_quick(&spec.id, |r| {
        r.state = State::Running {
            pid,
            started_at: started,
        };
        r.note_start(crate::time::format_rfc3339_nano(started));
    })?;
    hub.broadcast(Kind::Started, &[]);
    ready.send(serde_json::json!({ "event": "started", "pid": pid }));
    ready.close();

    let (done_tx, done_rx) = std::sync::mpsc::channel();
    for (stream, from) in stdio.outputs {
        let writer = Arc::clone(&writer);
        let hub = Arc::clone(&hub);
        let done = done_tx.clone();
        let max_line = spec.log.max_line;
        std::thread::spawn(move || {
            let kind = match stream {
                Stream::Stdout => Kind::Stdout,
                Stream::Stderr => Kind::Stderr,
            };
            let r = logs::copy_stream_with(Output(from), stream, &writer, max_line, &mut |data| {
                hub.broadcast(kind, data)
            });
            let _ = done.send(r);
        });
    }
    drop(done_tx);
    let status = wait_for(pid).map_err(sys("wait for the container"))?;
    let finished_at = SystemTime::now();
    let oom_killed = spec.runtime.oom_kill_count(&spec.id).unwrap_or(0) > 0;
    // Whatever is left of it goes now (with a shared pid namespace, its
    // children may outlive it).
    let _ = spec.runtime.delete(&spec.id, true);
    let deadline = Instant::now() + DRAIN;
    // A failed copy must not lose the exit code: it is recorded first.
    let mut copied = Ok(());
    while let Ok(r) = done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if copied.is_ok() {
            copied = r;
        }
    }
    let synced = writer.lock().unwrap_or_else(|p| p.into_inner()).sync();
    let exit = Exit {
        code: status.code(),
        oom_killed,
        ran_for: finished_at.duration_since(started).unwrap_or_default(),
    };
    spec.store.update(&spec.id, |r| {
        r.state = State::Exited {
            code: exit.code,
            oom_killed,
            finished_at,
        };
        r.monitor = None;
    })?;
    hub.finish(Kind::Exit, exit.code.to_string().as_bytes());
    let _ = std::fs::remove_file(&spec.socket);
    copied?;
    synced?;
    Ok(exit)
}

/// Container output as the monitor reads it. A terminal's master reads
/// EIO once the container's side is closed: that is its end of file.
struct Output(File);

impl std::io::Read for Output {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match std::io::Read::read(&mut self.0, buf) {
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(0),
            r => r,
        }
    }
}

/// Waits for `pid`, reaping any other orphan handed to this subreaper.
fn wait_for(pid: i32) -> Result<pea_runtime::ExitStatus, nix::Error> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    loop {
        match waitpid(None, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => {
                return Ok(pea_runtime::ExitStatus::Exited(code));
            }
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Ok(pea_runtime::ExitStatus::Signaled(sig as i32));
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Records a run that could not start as exited with Docker's code, and
/// tells the launcher and any attached client why.
fn fail_start(
    spec: &MonitorSpec,
    ready: &mut Ready,
    hub: Option<&Arc<Hub>>,
    reason: &str,
) -> Result<Exit, SupervisorError> {
    let code = start_failure_code(reason);
    let finished_at = SystemTime::now();
    spec.store.update(&spec.id, |r| {
        r.state = State::Exited {
            code,
            oom_killed: false,
            finished_at,
        };
        r.monitor = None;
    })?;
    ready.send(serde_json::json!({ "event": "error", "message": reason, "code": code }));
    if let Some(hub) = hub {
        hub.finish(Kind::Error, reason.as_bytes());
    }
    let _ = std::fs::remove_file(&spec.socket);
    Ok(Exit {
        code,
        oom_killed: false,
        ran_for: Duration::ZERO,
    })
}
