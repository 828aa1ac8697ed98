//! process.terminal + --console-socket: the pty master arrives over SCM_RIGHTS.

mod common;

use std::io::{ErrorKind, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Runtime, TIMEOUT, proc_alive, wait_for};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

fn console_socket(rt: &Runtime) -> (UnixListener, PathBuf) {
    let path = rt.host_dir("console").join("sock");
    let l = UnixListener::bind(&path).expect("bind console socket");
    l.set_nonblocking(true).unwrap();
    (l, path)
}

/// Accept one connection (bounded) and receive the fd it sends.
fn receive_master(l: &UnixListener) -> OwnedFd {
    let deadline = Instant::now() + TIMEOUT;
    let stream: UnixStream = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("no connection on the console socket: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg on the console socket");
    for c in msg.cmsgs().expect("cmsgs") {
        if let ControlMessageOwned::ScmRights(fds) = c {
            assert_eq!(fds.len(), 1, "expected exactly one fd, got {fds:?}");
            // SAFETY: the fd was just received and is owned by nobody else.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("console socket message carried no SCM_RIGHTS fd");
}

/// Read from the pty master until the output contains `needle` (bounded).
fn read_until(master: &OwnedFd, acc: &mut String, needle: &str) {
    let deadline = Instant::now() + TIMEOUT;
    while !acc.contains(needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {needle:?} on the console; got {acc:?}");
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let r = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            panic!("console closed before {needle:?}; got {acc:?}");
        }
        acc.push_str(&String::from_utf8_lossy(&buf[..r as usize]));
    }
}

fn write_all(master: &OwnedFd, s: &str) {
    let r = unsafe { libc::write(master.as_raw_fd(), s.as_ptr().cast(), s.len()) };
    assert_eq!(r, s.len() as isize, "write to the console");
}

#[test]
fn create_with_terminal_sends_pty_master() {
    let rt = Runtime::new("console-create");
    let (listener, sock) = console_socket(&rt);
    let mut b = rt.bundle();
    b.terminal(true)
        .sh("tty; echo hello-$((1+2)); read x; echo got-$x; exit 0");
    b.save();
    let id = rt.id();
    let create = rt.spawn(&[
        "create",
        "--bundle",
        b.path_str(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let master = receive_master(&listener);
    create.wait().ok();
    rt.start(&id).ok();
    let mut out = String::new();
    read_until(&master, &mut out, "hello-3");
    assert!(out.contains("/dev/pts/0"), "tty inside: {out:?}");
    write_all(&master, "abc\n");
    read_until(&master, &mut out, "got-abc");
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn run_detach_with_terminal() {
    let rt = Runtime::new("console-run");
    let (listener, sock) = console_socket(&rt);
    let mut b = rt.bundle();
    b.terminal(true)
        .sh("stty size; test -t 0 && test -t 1 && echo is-a-tty; read x; exit 0");
    b.save();
    let id = rt.id();
    let run = rt.spawn(&[
        "run",
        "--detach",
        "--bundle",
        b.path_str(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let master = receive_master(&listener);
    run.wait().ok();
    let mut out = String::new();
    read_until(&master, &mut out, "is-a-tty");
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    write_all(&master, "\n");
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn exec_tty_detached_via_console_socket() {
    // runc only takes --console-socket together with --detach.
    let rt = Runtime::new("console-exec");
    let (listener, sock) = console_socket(&rt);
    let pid_file = rt.host_dir("pid").join("exec.pid");
    let mut b = rt.bundle();
    b.long_running();
    let (id, _pid) = rt.start_container(&b);
    let exec = rt.spawn(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        sock.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "tty; echo exec-$((2+3)); read x; echo got-$x",
    ]);
    let master = receive_master(&listener);
    exec.wait().ok();
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("exec pid file")
        .trim()
        .parse()
        .expect("pid");
    let mut out = String::new();
    read_until(&master, &mut out, "exec-5");
    assert!(out.contains("/dev/pts/"), "tty inside exec: {out:?}");
    assert!(proc_alive(pid), "exec process {pid} gone before its input");
    write_all(&master, "xyz\n");
    read_until(&master, &mut out, "got-xyz");
    assert!(
        wait_for(TIMEOUT, || !proc_alive(pid)),
        "exec process {pid} did not exit"
    );
    assert_eq!(rt.status(&id).as_deref(), Some("running"));
    rt.kill(&id, "TERM").ok();
    rt.wait_status(&id, "stopped");
    rt.delete(&id).ok();
    rt.assert_gone(&id);
}

#[test]
fn terminal_without_console_socket_fails_create() {
    let rt = Runtime::new("console-missing");
    let mut b = rt.bundle();
    b.terminal(true).long_running();
    let id = rt.id();
    rt.create(&b, &id).failed();
    rt.assert_gone(&id);
}

#[test]
fn console_socket_without_terminal_fails_create() {
    let rt = Runtime::new("console-unwanted");
    let (_listener, sock) = console_socket(&rt);
    let mut b = rt.bundle();
    b.terminal(false).long_running();
    b.save();
    let id = rt.id();
    rt.cmd(&[
        "create",
        "--bundle",
        b.path_str(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ])
    .failed();
    rt.assert_gone(&id);
}
