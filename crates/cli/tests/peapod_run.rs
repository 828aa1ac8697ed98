//! `peapod run` and friends against the real binary: the run/logs/stop/rm
//! round trip, exit codes, logs -f, exec, env/workdir/user, volumes, bind
//! mounts, a read-only root, OOM kills, --init and -i. Each test has its
//! own roots (see peapod_common).

mod peapod_common;

use peapod_common::{Peapod, TIMEOUT, usable};

#[test]
fn run_logs_stop_rm_round_trip() {
    if !usable() {
        return;
    }
    let p = Peapod::new("trip");
    let name = p.name("c");
    let id = p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo hello-from-trip; trap 'exit 0' TERM; sleep 1000 & wait",
    ]);
    assert!(
        peapod_common::wait_for(TIMEOUT, || p
            .ok(&["logs", &name])
            .contains("hello-from-trip")),
        "logs: {:?}",
        p.ok(&["logs", &name])
    );
    assert_eq!(p.status(&name), "running");
    assert_eq!(p.ok(&["stop", &name]).trim(), name);
    let r = p.record(&name);
    assert_eq!(r["state"]["status"], "exited", "{r}");
    assert_eq!(r["state"]["code"], 0, "the TERM trap exits 0: {r}");
    // Logs survive the end of the container.
    assert!(p.ok(&["logs", &name]).contains("hello-from-trip"));
    assert_eq!(p.ok(&["rm", &name]).trim(), name);
    assert!(p.id_of(&name).is_none(), "record gone after rm");
    let (code, err) = p.fails(&["logs", &name]);
    assert_ne!(code, 0);
    assert!(err.contains("no such container"), "{err}");
    let left = p.leftovers(&id);
    assert!(left.is_empty(), "left after rm: {left:?}");
}

#[test]
fn run_rm_passes_exit_codes() {
    if !usable() {
        return;
    }
    let p = Peapod::new("codes");
    let cases: &[(&[&str], i32)] = &[
        (&["true"], 0),
        (&["sh", "-c", "exit 3"], 3),
        (&["no-such-command-here"], 127),
        (&["/etc/passwd"], 126),
        // sh is not PID 1 under --init: a SIGKILL it sends itself kills it.
        (&["--init", "busybox", "sh", "-c", "kill -9 $$"], 137),
    ];
    for (args, want) in cases {
        let name = p.name("x");
        let mut all = vec!["run", "--rm", "--name", &name, "--network", "none"];
        if args[0] != "--init" {
            all.push("busybox");
        }
        all.extend_from_slice(args);
        let (code, out, err) = p.code(&all);
        assert_eq!(code, *want, "{all:?}: stdout {out:?} stderr {err:?}");
        // Gone when run returns, not some time later.
        assert!(p.id_of(&name).is_none(), "{all:?}: --rm left the record");
        assert!(p.ids().is_empty(), "{all:?}: --rm left {:?}", p.ids());
        assert!(p.mounts().is_empty(), "{all:?}: --rm left {:?}", p.mounts());
    }
    // Killed from outside (PID 1 of its namespace ignores its own SIGKILL).
    let name = p.name("killed");
    let mut child = p
        .command(&[
            "run",
            "--rm",
            "--name",
            &name,
            "--network",
            "none",
            "busybox",
            "sleep",
            "1000",
        ])
        .spawn()
        .unwrap();
    assert!(peapod_common::wait_for(TIMEOUT, || p
        .id_of(&name)
        .is_some()
        && p.status(&name) == "running"));
    p.ok(&["kill", &name]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert!(p.ids().is_empty(), "--rm left records: {:?}", p.ids());
    assert!(p.mounts().is_empty(), "{:?}", p.mounts());
}

#[test]
fn logs_follow_and_exec() {
    if !usable() {
        return;
    }
    let p = Peapod::new("exec");
    let f = p.name("follow");
    p.run_d(&[
        "--name",
        &f,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 1; done",
    ]);
    // Follows until the container ends, then returns.
    let out = p.ok(&["logs", "-f", &f]);
    assert_eq!(out, "line1\nline2\nline3\n");
    assert_eq!(p.status(&f), "exited");

    let name = p.name("c");
    let id = p.run_d(&[
        "--name",
        &name,
        "--network",
        "none",
        "-e",
        "FOO=bar",
        "--hostname",
        "exec-host",
        "busybox",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        p.ok(&["exec", &name, "cat", "/etc/hostname"]).trim(),
        "exec-host"
    );
    // The short id works too.
    assert_eq!(p.ok(&["exec", &id[..12], "hostname"]).trim(), "exec-host");
    let (code, _, _) = p.code(&["exec", &name, "sh", "-c", "exit 42"]);
    assert_eq!(code, 42, "exec passes its exit code through");
    assert_eq!(
        p.ok(&["exec", "-u", "1000:1000", &name, "id"]).trim(),
        "uid=1000 gid=1000"
    );
    assert_eq!(p.ok(&["exec", "-w", "/etc", &name, "pwd"]).trim(), "/etc");
    assert_eq!(
        p.ok(&["exec", "-e", "X=y", &name, "sh", "-c", "echo $X $FOO"])
            .trim(),
        "y bar"
    );
    let (code, _, err) = p.code(&["exec", &name, "no-such-command"]);
    assert_eq!(code, 127, "exec of a missing command: {err}");
    let (code, _, err) = p.code(&["exec", &name, "/etc/passwd"]);
    assert_eq!(code, 126, "exec of a non-executable file: {err}");
    let (code, out, err) = p.code(&["exec", "-t", &name, "sh", "-c", "[ -t 1 ] && echo on-a-tty"]);
    assert_eq!(code, 0, "exec -t: {out} {err}");
    assert!(out.contains("on-a-tty"), "{out}");
    p.ok(&["rm", "-f", &name]);
    let (code, err) = p.fails(&["exec", &name, "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("no such container"), "{err}");
}

#[test]
fn env_workdir_user() {
    if !usable() {
        return;
    }
    let p = Peapod::new("env");
    let env_file = p.dir().join("env.list");
    std::fs::write(&env_file, "# a comment\nA=1\nB=two words\n").unwrap();
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--env-file",
        env_file.to_str().unwrap(),
        "-e",
        "C=three",
        "-e",
        "A=overridden",
        "-w",
        "/usr",
        "-u",
        "1000:1000",
        "busybox",
        "sh",
        "-c",
        "echo \"$A|$B|$C\"; pwd; id",
    ]);
    assert_eq!(
        out, "overridden|two words|three\n/usr\nuid=1000 gid=1000\n",
        "env, workdir, user"
    );
    // A workdir that does not exist yet is made.
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-w",
        "/new/dir",
        "busybox",
        "pwd",
    ]);
    assert_eq!(out.trim(), "/new/dir");
}

#[test]
fn volumes_shared_and_bind_read_only() {
    if !usable() {
        return;
    }
    let p = Peapod::new("vol");
    let vol = p.name("vol");
    let writer = p.name("writer");
    p.ok(&[
        "run",
        "--name",
        &writer,
        "--network",
        "none",
        "-v",
        &format!("{vol}:/data"),
        "busybox",
        "sh",
        "-c",
        "echo shared-data > /data/f",
    ]);
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{vol}:/in:ro"),
        "busybox",
        "cat",
        "/in/f",
    ]);
    assert_eq!(out, "shared-data\n");
    assert!(p.ok(&["volume", "ls"]).contains(&vol));
    // In use by the (exited) writer: not removed.
    let (code, err) = p.fails(&["volume", "rm", &vol]);
    assert_ne!(code, 0);
    assert!(err.contains(&writer), "names its user: {err}");
    p.ok(&["rm", &writer]);
    p.ok(&["volume", "rm", &vol]);
    assert!(!p.ok(&["volume", "ls"]).contains(&vol));

    let host = p.dir().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("x"), "from-host\n").unwrap();
    let out = p.code(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{}:/data:ro", host.display()),
        "busybox",
        "sh",
        "-c",
        "cat /data/x; echo y > /data/y && echo wrote",
    ]);
    assert_ne!(out.0, 0, "writing to a :ro bind fails: {out:?}");
    assert!(out.1.starts_with("from-host\n"), "{out:?}");
    assert!(!out.1.contains("wrote"), "{out:?}");
    assert!(out.2.contains("Read-only file system"), "{out:?}");
    assert!(!host.join("y").exists());
    // Read-write: the host sees what the container writes.
    p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{}:/data", host.display()),
        "busybox",
        "sh",
        "-c",
        "echo back > /data/y",
    ]);
    assert_eq!(std::fs::read_to_string(host.join("y")).unwrap(), "back\n");
}

#[test]
fn read_only_root_with_tmpfs() {
    if !usable() {
        return;
    }
    let p = Peapod::new("ro");
    let (code, out, err) = p.code(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        "if echo x > /f; then echo root-writable; fi; echo ok > /tmp/f && cat /tmp/f",
    ]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out, "ok\n", "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
}

#[test]
fn memory_limit_oom_kill_is_recorded() {
    if !usable() {
        return;
    }
    let p = Peapod::new("oom");
    let name = p.name("c");
    let (code, _, err) = p.code(&[
        "run",
        "--name",
        &name,
        "--network",
        "none",
        "--memory",
        "32m",
        "busybox",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(code, 137, "{err}");
    let r = p.record(&name);
    assert_eq!(r["state"]["status"], "exited", "{r}");
    assert_eq!(r["state"]["code"], 137, "{r}");
    assert_eq!(r["state"]["oom_killed"], true, "{r}");
    let shown = p.ok(&[
        "inspect",
        "--format",
        "{{.State.OOMKilled}} {{.State.ExitCode}} {{.State.Status}}",
        &name,
    ]);
    assert_eq!(shown.trim(), "true 137 exited");
    // Without a limit problem, no OOM flag.
    let ok = p.name("fine");
    p.ok(&[
        "run",
        "--name",
        &ok,
        "--network",
        "none",
        "--memory",
        "32m",
        "busybox",
        "true",
    ]);
    assert_eq!(p.record(&ok)["state"]["oom_killed"], false);
}

#[test]
fn init_reaps_and_runs_the_command() {
    if !usable() {
        return;
    }
    let p = Peapod::new("init");
    let out = p.ok(&[
        "run",
        "--rm",
        "--init",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/comm; echo pid=$$; ps -o pid,comm",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("peapod-init"), "{out}");
    assert_ne!(
        lines.next(),
        Some("pid=1"),
        "the command is not PID 1: {out}"
    );
    // Without --init the command is PID 1.
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo $$",
    ]);
    assert_eq!(out.trim(), "1");
}

#[test]
fn interactive_stdin() {
    if !usable() {
        return;
    }
    let p = Peapod::new("stdin");
    let out = p.output_stdin(
        &["run", "-i", "--rm", "--network", "none", "busybox", "cat"],
        b"hello\nsecond line\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nsecond line\n");
    // Megabytes of binary input arrive intact, and lots of output too.
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = p.output_stdin(
        &[
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sha256sum",
        ],
        &data,
    );
    assert!(out.status.success(), "{out:?}");
    let want: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{want}  -\n"));
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "seq",
        "1",
        "200000",
    ]);
    assert_eq!(out.lines().count(), 200_000);
    assert_eq!(out.lines().last(), Some("200000"));
    // Without -i the container's stdin is empty.
    let out = p.output_stdin(
        &["run", "--rm", "--network", "none", "busybox", "wc", "-c"],
        b"ignored\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

#[test]
fn tty_run_keeps_the_exit_code() {
    if !usable() {
        return;
    }
    let p = Peapod::new("tty");
    let name = p.name("c");
    let (code, out, err) = p.code(&[
        "run",
        "-t",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo on-a-tty; [ -t 1 ] && echo is-a-tty; exit 3",
    ]);
    assert_eq!(code, 3, "stdout {out:?} stderr {err:?}");
    assert!(out.contains("is-a-tty"), "{out:?}");
    let r = p.record(&name);
    assert_eq!(r["state"]["code"], 3, "{r}");
    assert!(p.ok(&["logs", &name]).contains("on-a-tty"));
    // Detached with a terminal: the end is recorded the same way.
    let d = p.name("d");
    p.run_d(&[
        "-t",
        "--name",
        &d,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 5",
    ]);
    let r = p.wait_exited(&d, TIMEOUT);
    assert_eq!(r["state"]["code"], 5, "{r}");
}
