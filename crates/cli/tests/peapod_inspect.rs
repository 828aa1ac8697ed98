//! The looking-at commands against the real binary: ps, inspect (and its
//! -f templates), top, stats, cp (with symlink escape attempts), export,
//! system/container prune after crashes, and image rm refusing an image a
//! container uses. Each test has its own roots (see peapod_common) and
//! `--network none`.

mod peapod_common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use peapod_common::{Peapod, TIMEOUT, usable, wait_for};
use serde_json::Value;

const SLEEPER: &str = "trap 'exit 0' TERM; sleep 1000 & wait";

fn inspect(p: &Peapod, name: &str) -> Value {
    let v: Value = serde_json::from_str(&p.ok(&["inspect", name])).expect("inspect JSON");
    v[0].clone()
}

fn sleeper(p: &Peapod, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["--name", name, "--network", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", SLEEPER]);
    let id = p.run_d(&args);
    assert!(wait_for(TIMEOUT, || p.status(name) == "running"));
    id
}

#[test]
fn ps_and_inspect_show_running_and_exited() {
    if !usable() {
        return;
    }
    let p = Peapod::new("ps");
    let up = p.name("up");
    let gone = p.name("gone");
    let id = sleeper(&p, &up, &["-v", "/data", "--restart", "on-failure:2"]);
    p.run_d(&[
        "--name",
        &gone,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    p.wait_exited(&gone, TIMEOUT);

    let ps = p.ok(&["ps"]);
    let header = ps.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{ps}");
    }
    let line = ps
        .lines()
        .find(|l| l.contains(&up))
        .expect("running one listed");
    assert!(line.starts_with(&id[..12]), "{line}");
    assert!(line.contains(" Up "), "{line}");
    assert!(line.contains("\"sh -c trap 'exit 0'…\""), "{line}");
    assert!(!ps.contains(&gone), "exited ones only with -a: {ps}");
    let all = p.ok(&["ps", "-a"]);
    let line = all
        .lines()
        .find(|l| l.contains(&gone))
        .expect("-a lists it");
    assert!(line.contains("Exited (3) "), "{line}");
    assert!(line.contains(" ago"), "{line}");
    let quiet = p.ok(&["ps", "-q"]);
    assert_eq!(quiet.trim(), &id[..12]);
    let no_trunc = p.ok(&["ps", "-q", "--no-trunc"]);
    assert_eq!(no_trunc.trim(), id);
    let json: Value = serde_json::from_str(&p.ok(&["ps", "-a", "--format", "json"])).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json}");
    let g = rows.iter().find(|r| r["Names"] == gone.as_str()).unwrap();
    assert_eq!(g["State"], "exited");
    assert_eq!(g["ExitCode"], 3);
    assert!(g["Status"].as_str().unwrap().starts_with("Exited (3)"));

    // inspect of the running one.
    let v = inspect(&p, &up);
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Name"], format!("/{up}"));
    assert_eq!(v["Path"], "sh");
    assert_eq!(v["Args"][0], "-c");
    let st = &v["State"];
    assert_eq!(st["Status"], "running", "{v}");
    assert_eq!(st["Running"], true);
    assert_eq!(st["SupervisorAlive"], true);
    let pid = st["Pid"].as_i64().unwrap();
    assert!(pid > 1, "{st}");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(v["HostConfig"]["NetworkMode"], "none");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(v["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    assert_eq!(v["Config"]["Image"], "busybox");
    assert!(
        v["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("PATH=")),
        "{v}"
    );
    let graph = &v["GraphDriver"]["Data"];
    for key in ["UpperDir", "WorkDir", "MergedDir", "LowerDir"] {
        let paths = graph[key].as_str().unwrap_or_else(|| panic!("{key}: {v}"));
        for path in paths.split(':') {
            assert!(Path::new(path).exists(), "{key} {path}");
        }
    }
    assert!(
        Path::new(graph["MergedDir"].as_str().unwrap())
            .join("bin/busybox")
            .exists()
    );
    let mounts = v["Mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["Destination"] == "/data" && m["Type"] == "volume"),
        "{mounts:?}"
    );
    for ns in ["pid", "mnt", "net"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let theirs = v["Namespaces"][ns]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"));
        assert!(theirs.starts_with(&format!("{ns}:[")), "{theirs}");
        assert_ne!(
            theirs,
            host.to_string_lossy(),
            "{ns} is the container's own"
        );
    }
    assert!(Path::new(v["LogPath"].as_str().unwrap()).exists());

    // The exited one, and templates.
    let v = inspect(&p, &gone);
    assert_eq!(v["State"]["ExitCode"], 3);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["Pid"], 0);
    assert_eq!(
        p.ok(&["inspect", "-f", "{{.State.ExitCode}}", &gone])
            .trim(),
        "3"
    );
    assert_eq!(
        p.ok(&[
            "inspect",
            "--format",
            "{{.Name}} {{.State.Status}}",
            &gone,
            &up
        ])
        .lines()
        .collect::<Vec<_>>(),
        [format!("/{gone} exited"), format!("/{up} running")]
    );
    assert_eq!(
        p.ok(&["inspect", "-f", "{{.State.Pid}}", &up]).trim(),
        pid.to_string()
    );
    let (_, err) = p.fails(&["inspect", "-f", "{{range .Mounts}}x{{end}}", &up]);
    assert!(
        err.contains("template") && err.contains("supported"),
        "{err}"
    );
    let (code, err) = p.fails(&["inspect", "no-such-container-here"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such container"), "{err}");
}

#[test]
fn top_and_stats_of_a_running_container() {
    if !usable() {
        return;
    }
    let p = Peapod::new("top");
    let name = p.name("c");
    let id = sleeper(&p, &name, &["--memory", "64m"]);
    let top = p.ok(&["top", &name]);
    let header = top.lines().next().unwrap();
    for col in ["UID", "PID", "PPID", "TIME", "CMD"] {
        assert!(header.contains(col), "{top}");
    }
    assert!(
        top.lines().any(|l| l.ends_with("sleep 1000")),
        "top lists the sleep: {top}"
    );
    assert!(top.lines().skip(1).all(|l| l.starts_with("root")), "{top}");

    let stats = p.ok(&["stats", "--no-stream", &name]);
    let header = stats.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "PIDS",
    ] {
        assert!(header.contains(col), "{stats}");
    }
    let line = stats.lines().nth(1).expect("one row");
    assert!(line.starts_with(&id[..12]), "{stats}");
    assert!(line.contains(" / 64MiB"), "the --memory limit: {stats}");
    let all = p.ok(&["stats", "--no-stream", "--format", "json"]);
    let rows: Value = serde_json::from_str(all.trim()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["MemLimit"], 64 << 20);
    assert!(
        rows[0]["PIDs"].as_u64().unwrap() >= 2,
        "sh and sleep: {rows}"
    );
    assert!(rows[0]["MemUsage"].as_u64().unwrap() > 0);

    p.ok(&["stop", &name]);
    let (_, err) = p.fails(&["top", &name]);
    assert!(err.contains("exited"), "{err}");
    let (_, err) = p.fails(&["stats", "--no-stream", &name]);
    assert!(
        err.contains("exited") && err.contains("start it first"),
        "{err}"
    );
    // Streaming ends by itself once nothing runs.
    assert!(p.ok(&["stats"]).starts_with("CONTAINER ID"));
}

#[test]
fn cp_in_and_out_and_no_symlink_escapes() {
    if !usable() {
        return;
    }
    let p = Peapod::new("cp");
    let name = p.name("c");
    sleeper(&p, &name, &["-v", "/data"]);
    let host = p.dir().join("host");
    let out = p.dir().join("out");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(host.join("file.txt"), "from-host\n").unwrap();
    std::fs::set_permissions(host.join("file.txt"), PermissionsExt::from_mode(0o750)).unwrap();
    std::fs::write(host.join("tree/sub/deep"), "deep\n").unwrap();
    let secret_dir = p.dir().join("secret");
    std::fs::create_dir_all(&secret_dir).unwrap();
    let secret = secret_dir.join("shadow");
    std::fs::write(&secret, "host-secret\n").unwrap();

    // In: a file into a directory, a tree to a new name.
    let f = host.join("file.txt");
    p.ok(&["cp", f.to_str().unwrap(), &format!("{name}:/tmp/")]);
    assert_eq!(
        p.ok(&["exec", &name, "cat", "/tmp/file.txt"]),
        "from-host\n"
    );
    assert_eq!(
        p.ok(&["exec", &name, "stat", "-c", "%a", "/tmp/file.txt"])
            .trim(),
        "750"
    );
    let t = host.join("tree");
    p.ok(&["cp", t.to_str().unwrap(), &format!("{name}:/copied")]);
    assert_eq!(p.ok(&["exec", &name, "cat", "/copied/sub/deep"]), "deep\n");

    // Out: a file written inside, a directory.
    p.ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "mkdir -p /made/d && echo inside > /made/d/x",
    ]);
    p.ok(&["cp", &format!("{name}:/made/d/x"), out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("x")).unwrap(), "inside\n");
    let renamed = out.join("renamed");
    p.ok(&["cp", &format!("{name}:/made"), renamed.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(renamed.join("d/x")).unwrap(),
        "inside\n"
    );
    // A volume is not mounted on the host's view of the root filesystem:
    // its own directory is used.
    p.ok(&["cp", f.to_str().unwrap(), &format!("{name}:/data/")]);
    assert_eq!(
        p.ok(&["exec", &name, "cat", "/data/file.txt"]),
        "from-host\n"
    );
    p.ok(&["exec", &name, "sh", "-c", "echo vol > /data/v"]);
    p.ok(&["cp", &format!("{name}:/data/v"), out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("v")).unwrap(), "vol\n");
    // DIR/. copies what is in it, both ways.
    let contents = out.join("contents");
    p.ok(&["cp", &format!("{name}:/made/."), contents.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(contents.join("d/x")).unwrap(),
        "inside\n"
    );
    let tree_contents = format!("{}/.", t.display());
    p.ok(&["cp", &tree_contents, &format!("{name}:/tmp")]);
    assert_eq!(p.ok(&["exec", &name, "cat", "/tmp/sub/deep"]), "deep\n");
    p.ok(&["cp", &tree_contents, &format!("{name}:/fresh")]);
    assert_eq!(p.ok(&["exec", &name, "cat", "/fresh/sub/deep"]), "deep\n");
    // Out as a tar stream.
    let tar = p.output(&["cp", &format!("{name}:/made"), "-"]);
    assert!(tar.status.success());
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&tar.stdout[..]);
    for e in ar.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.iter().any(|n| n == "made/d/x"), "{names:?}");

    // Escapes: symlinks inside the container to host paths, and up.
    let s = secret_dir.to_str().unwrap();
    p.ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        &format!(
            "ln -s {s}/shadow /leak && ln -s {s} /leakdir && ln -s ../../../../../../../.. /up"
        ),
    ]);
    // The link itself comes out, never what it points to on the host.
    p.ok(&[
        "cp",
        &format!("{name}:/leak"),
        out.join("leak").to_str().unwrap(),
    ]);
    let meta = std::fs::symlink_metadata(out.join("leak")).unwrap();
    assert!(meta.file_type().is_symlink());
    for path in ["/leakdir/shadow".to_string(), format!("/up{s}/shadow")] {
        let dest = out.join("stolen");
        let (_, err) = p.fails(&["cp", &format!("{name}:{path}"), dest.to_str().unwrap()]);
        assert!(err.contains("no such file"), "{path}: {err}");
        assert!(!dest.exists(), "{path} read a host file");
    }
    // Writes through the links resolve inside the container: its own
    // directory of that path does not exist yet.
    let (_, err) = p.fails(&[
        "cp",
        f.to_str().unwrap(),
        &format!("{name}:/leakdir/shadow"),
    ]);
    assert!(err.contains("no such directory in container"), "{err}");
    p.ok(&["cp", f.to_str().unwrap(), &format!("{name}:/leak")]);
    p.ok(&["exec", &name, "mkdir", "-p", &format!("/up{s}")]);
    p.ok(&[
        "cp",
        f.to_str().unwrap(),
        &format!("{name}:/leakdir/shadow"),
    ]);
    p.ok(&["cp", f.to_str().unwrap(), &format!("{name}:/up{s}/")]);
    // A tar stream whose own symlink points out.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "esc", s).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    b.append_data(&mut h, "esc/pwned", &b"pwned\n"[..]).unwrap();
    let stream = b.into_inner().unwrap();
    let o = p.output_stdin(&["cp", "-", &format!("{name}:/tmp")], &stream);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host-secret\n");
    let mut left: Vec<_> = std::fs::read_dir(&secret_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["shadow"], "nothing written next to the host file");
    assert_eq!(
        p.ok(&["exec", &name, "cat", &format!("{s}/pwned")]),
        "pwned\n",
        "the stream's link was followed inside the container"
    );
    assert_eq!(
        p.ok(&["exec", &name, "cat", &format!("{s}/shadow")]),
        "from-host\n"
    );
    let (_, err) = p.fails(&["cp", f.to_str().unwrap(), f.to_str().unwrap()]);
    assert!(err.contains("CONTAINER:PATH"), "{err}");
}

#[test]
fn export_writes_the_root_filesystem() {
    if !usable() {
        return;
    }
    let p = Peapod::new("export");
    let name = p.name("c");
    sleeper(&p, &name, &[]);
    p.ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo written > /hello.txt && ln /hello.txt /zz-hard && mkfifo /fifo",
    ]);
    let file = p.dir().join("rootfs.tar");
    p.ok(&["export", &name, "-o", file.to_str().unwrap()]);
    let mut found = std::collections::BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&file).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let mut data = String::new();
        if e.header().entry_type() == tar::EntryType::Regular && path == "hello.txt" {
            e.read_to_string(&mut data).unwrap();
        }
        found.insert(path, (e.header().entry_type(), data));
    }
    // bin may be a link to usr/bin (a merged /usr), kept as a link.
    let bin_link = found
        .get("bin")
        .is_some_and(|b| b.0 == tar::EntryType::Symlink);
    assert!(
        found.contains_key("bin/busybox") || (bin_link && found.contains_key("usr/bin/busybox")),
        "{:?}",
        found.keys()
    );
    assert_eq!(found["hello.txt"].1, "written\n");
    assert_eq!(found["zz-hard"].0, tar::EntryType::Link);
    assert_eq!(found["fifo"].0, tar::EntryType::Fifo);
    assert_eq!(found["proc"].0, tar::EntryType::Directory);
    // To stdout when it is not a terminal.
    let o = p.output(&["export", &name]);
    assert!(o.status.success());
    assert_eq!(o.stdout, std::fs::read(&file).unwrap());
}

#[test]
fn system_prune_removes_stopped_and_crashed_leftovers() {
    if !usable() {
        return;
    }
    let p = Peapod::new("prune");
    let done = p.name("done");
    p.run_d(&["--name", &done, "--network", "none", "busybox", "true"]);
    p.wait_exited(&done, TIMEOUT);
    let keep = p.name("keep");
    let keep_id = sleeper(&p, &keep, &[]);

    // A container whose supervisor, monitor and process were all killed.
    let crashed = p.name("crashed");
    let crashed_id = sleeper(&p, &crashed, &[]);
    let r = p.record(&crashed);
    let pid = inspect(&p, &crashed)["State"]["Pid"].as_i64().unwrap() as i32;
    // The supervisor first: the process still runs, unwatched.
    let supervisor = r["supervisor"]["pid"].as_i64().unwrap() as i32;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(wait_for(TIMEOUT, || p.ok(&["ps"]).lines().any(|l| l
        .contains(&crashed)
        && l.contains("(supervisor died)"))));
    assert_eq!(inspect(&p, &crashed)["State"]["SupervisorAlive"], false);
    for who in [&r["supervisor"]["pid"], &r["monitor"]["pid"]] {
        if let Some(sp) = who.as_i64() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(sp as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(wait_for(TIMEOUT, || !Path::new(&format!("/proc/{pid}")).exists()));

    // A record deleted by hand: its mount and snapshot are left.
    let orphan = p.name("orphan");
    let orphan_id = p
        .ok(&[
            "create",
            "--name",
            &orphan,
            "--network",
            "none",
            "busybox",
            "true",
        ])
        .trim()
        .to_string();
    let upper = inspect(&p, &orphan)["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(p.containers_dir().join(&orphan_id).join("record.json")).unwrap();
    assert!(p.mounts().iter().any(|m| m.contains(&orphan_id)));

    let out = p.ok(&["system", "prune", "-f"]);
    assert!(out.contains(&crashed_id), "{out}");
    for gone in [&done, &crashed] {
        assert!(p.id_of(gone).is_none(), "{gone} removed: {out}");
    }
    assert!(p.id_of(&keep).is_some(), "a running one stays");
    assert!(out.contains(&format!("ctr-{orphan_id}")), "{out}");
    assert!(
        !p.mounts().iter().any(|m| m.contains(&orphan_id)),
        "{:?}",
        p.mounts()
    );
    assert!(
        !Path::new(&upper).exists(),
        "snapshot of the orphan removed"
    );
    assert!(!p.containers_dir().join(&orphan_id).exists());
    assert!(
        p.leftovers(&crashed_id).is_empty(),
        "{:?}",
        p.leftovers(&crashed_id)
    );
    assert!(!p.ok(&["ps", "-a"]).contains(&crashed));
    assert_eq!(p.status(&keep), "running");
    assert!(!out.contains(&keep_id), "{out}");

    // The container prune alias.
    let another = p.name("another");
    p.run_d(&["--name", &another, "--network", "none", "busybox", "true"]);
    p.wait_exited(&another, TIMEOUT);
    let out = p.ok(&["container", "prune", "-f"]);
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(p.id_of(&another).is_none());
    let (_, err) = p.fails(&["container", "prune"]);
    assert!(err.contains("-f"), "{err}");
}

#[test]
fn image_rm_refuses_an_image_a_container_uses() {
    if !usable() {
        return;
    }
    let p = Peapod::new("imgrm");
    let name = p.name("c");
    p.ok(&[
        "create",
        "--name",
        &name,
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        SLEEPER,
    ]);
    let (code, err) = p.fails(&["image", "rm", "busybox"]);
    assert_eq!(code, 1);
    assert!(err.contains(&name), "{err}");
    assert!(
        err.contains("remove the container first or use -f"),
        "{err}"
    );
    assert!(p.ok(&["images"]).contains("busybox"));
    // -f takes the name only; prune keeps the layers the container sits on.
    p.ok(&["image", "rm", "-f", "busybox"]);
    assert!(!p.ok(&["images"]).contains("busybox"));
    p.ok(&["image", "prune"]);
    p.ok(&["start", &name]);
    assert!(wait_for(TIMEOUT, || p.status(&name) == "running"));
    assert_eq!(p.ok(&["exec", &name, "echo", "still-here"]), "still-here\n");
    let v = inspect(&p, &name);
    for dir in v["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .split(':')
    {
        assert!(Path::new(dir).join("bin").exists(), "{dir}");
    }
}
