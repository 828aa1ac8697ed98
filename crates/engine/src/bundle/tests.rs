use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use peapod_image::config::{ContainerConfig, ImageConfig};
use serde_json::{Value, json};

use super::*;
use crate::request::{ContainerRequest, SeccompMode, TmpfsSpec, Ulimit, VolumeSource, VolumeSpec};
use crate::userns::IdMapping;
use crate::volume::VolumeStore;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Fixture {
    tmp: tempfile::TempDir,
    image: ImageConfig,
    plan: NamespacePlan,
    userns: Option<IdMapping>,
    ip: Option<IpAddr>,
    store: VolumeStore,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("rootfs");
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::create_dir_all(tmp.path().join("bundle")).unwrap();
        fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n\
             nobody:x:65534:65534::/nonexistent:/bin/false\n",
        )
        .unwrap();
        fs::write(
            rootfs.join("etc/group"),
            "root:x:0:\nstaff:x:50:\nwheel:x:10:app,other\napp:x:1000:\ndocker:x:999:app\n",
        )
        .unwrap();
        let store = VolumeStore::new(tmp.path().join("volumes"));
        Fixture {
            tmp,
            image: image(ContainerConfig {
                cmd: Some(vec!["sh".into()]),
                ..Default::default()
            }),
            plan: NamespacePlan::default(),
            userns: None,
            ip: None,
            store,
        }
    }

    fn rootfs(&self) -> PathBuf {
        self.tmp.path().join("rootfs")
    }

    fn bundle(&self) -> PathBuf {
        self.tmp.path().join("bundle")
    }

    fn run(&self, req: &ContainerRequest) -> Result<(BundleOutput, Value), BundleError> {
        let rootfs = self.rootfs();
        let bundle = self.bundle();
        let ctx = BundleContext {
            id: ID,
            image: &self.image,
            rootfs: &rootfs,
            bundle_dir: &bundle,
            namespaces: self.plan.clone(),
            ip: self.ip,
            volumes: &self.store,
            userns: self.userns.clone(),
            userns_path: None,
            cgroups_path: format!("/peapod/{ID}"),
            shm: None,
        };
        let out = write_bundle(req, &ctx)?;
        let spec = serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
        Ok((out, spec))
    }

    fn ok(&self, req: &ContainerRequest) -> (BundleOutput, Value) {
        match self.run(req) {
            Ok(v) => v,
            Err(e) => panic!("write_bundle: {e}"),
        }
    }
}

fn image(config: ContainerConfig) -> ImageConfig {
    ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        config: Some(config),
        ..Default::default()
    }
}

fn req() -> ContainerRequest {
    ContainerRequest {
        image: "busybox".into(),
        ..Default::default()
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

fn mount<'a>(spec: &'a Value, dest: &str) -> Option<&'a Value> {
    spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == dest)
}

fn ns_types(spec: &Value) -> Vec<String> {
    spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn process_from_image_and_request() {
    let mut f = Fixture::new();
    f.image = image(ContainerConfig {
        entrypoint: Some(vec!["/entry".into()]),
        cmd: Some(vec!["serve".into()]),
        env: Some(vec!["PATH=/opt/bin".into(), "FOO=1".into(), "BAR=x".into()]),
        working_dir: Some("/app".into()),
        ..Default::default()
    });
    let mut r = req();
    r.env = vec!["FOO=2".into()];
    r.tty = true;
    let (out, spec) = f.ok(&r);
    let p = &spec["process"];
    assert_eq!(strings(&p["args"]), vec!["/entry", "serve"]);
    let env = strings(&p["env"]);
    assert_eq!(
        env,
        vec![
            "PATH=/opt/bin",
            "FOO=2",
            "BAR=x",
            "HOSTNAME=0123456789ab",
            "TERM=xterm",
            "HOME=/root"
        ]
    );
    assert_eq!(p["cwd"], "/app");
    assert!(f.rootfs().join("app").is_dir(), "the workdir is created");
    assert_eq!(p["terminal"], true);
    assert_eq!(p["user"]["uid"], 0);
    assert_eq!(spec["hostname"], "0123456789ab");
    assert_eq!(spec["root"]["path"], json!(f.rootfs()));
    assert_eq!(spec["root"]["readonly"], false);
    assert_eq!(spec["linux"]["cgroupsPath"], format!("/peapod/{ID}"));
    assert!(spec.get("annotations").is_none());
    assert_eq!(out.stop_signal, libc::SIGTERM);
    assert!(out.tty);
    assert_eq!(out.process_user, (0, 0));
    // The runtime accepts it.
    let b = pea_runtime::config::Bundle::load(&f.bundle()).unwrap();
    assert_eq!(b.process().args().clone().unwrap(), vec!["/entry", "serve"]);
}

#[test]
fn default_path_and_hostname() {
    let f = Fixture::new();
    let mut r = req();
    r.hostname = Some("web".into());
    let (_, spec) = f.ok(&r);
    let env = strings(&spec["process"]["env"]);
    assert_eq!(env[0], process::DEFAULT_PATH);
    assert!(env.contains(&"HOSTNAME=web".to_string()));
    assert!(!env.iter().any(|e| e.starts_with("TERM=")));
    assert_eq!(spec["hostname"], "web");
    assert_eq!(spec["process"]["cwd"], "/");
    assert_eq!(
        fs::read_to_string(f.bundle().join("hostname")).unwrap(),
        "web\n"
    );
    let mut r = req();
    r.workdir = Some("rel".into());
    let e = f.run(&r).unwrap_err().to_string();
    assert_eq!(
        e,
        "--workdir \"rel\": the working directory must be an absolute path"
    );
}

#[test]
fn entrypoint_and_command_rules() {
    let mut f = Fixture::new();
    f.image = image(ContainerConfig {
        entrypoint: Some(vec!["/entry".into()]),
        cmd: Some(vec!["default".into()]),
        ..Default::default()
    });
    let mut r = req();
    r.command = vec!["other".into()];
    assert_eq!(
        strings(&f.ok(&r).1["process"]["args"]),
        vec!["/entry", "other"]
    );
    // --entrypoint drops the image's Cmd.
    let mut r = req();
    r.entrypoint = Some(vec!["/bin/echo".into()]);
    assert_eq!(strings(&f.ok(&r).1["process"]["args"]), vec!["/bin/echo"]);
    // --entrypoint "" with a command: just the command.
    r.entrypoint = Some(vec![]);
    r.command = vec!["ls".into(), "-l".into()];
    assert_eq!(strings(&f.ok(&r).1["process"]["args"]), vec!["ls", "-l"]);
    f.image = image(ContainerConfig::default());
    let e = f.run(&req()).unwrap_err().to_string();
    assert_eq!(
        e,
        "no command specified: the image has no Cmd or Entrypoint; give one after the image name"
    );
}

#[test]
fn users_and_groups() {
    let mut f = Fixture::new();
    let user = |f: &Fixture, u: &str| {
        let mut r = req();
        r.user = Some(u.into());
        f.run(&r).map(|(o, s)| {
            (
                o.process_user,
                s["process"]["user"]["additionalGids"].clone(),
                s,
            )
        })
    };
    let (ids, extra, spec) = user(&f, "app").unwrap();
    assert_eq!(ids, (1000, 1000));
    assert_eq!(extra, json!([10, 999]));
    assert!(strings(&spec["process"]["env"]).contains(&"HOME=/home/app".to_string()));
    assert_eq!(user(&f, "app:staff").unwrap().0, (1000, 50));
    assert_eq!(user(&f, "app:7").unwrap().0, (1000, 7));
    assert_eq!(user(&f, "1000").unwrap().0, (1000, 1000));
    assert_eq!(user(&f, "1234").unwrap().0, (1234, 0));
    assert_eq!(user(&f, "1234:1234").unwrap().0, (1234, 1234));
    assert_eq!(
        user(&f, "ghost").unwrap_err().to_string(),
        "unable to find user ghost: no matching entries in passwd file"
    );
    assert_eq!(
        user(&f, "app:ghosts").unwrap_err().to_string(),
        "unable to find group ghosts: no matching entries in group file"
    );
    // The image's User applies when -u is not given.
    f.image = image(ContainerConfig {
        user: Some("nobody".into()),
        cmd: Some(vec!["sh".into()]),
        ..Default::default()
    });
    assert_eq!(f.ok(&req()).0.process_user, (65534, 65534));
}

#[test]
fn passwd_is_read_inside_the_root() {
    let f = Fixture::new();
    // An absolute symlink must resolve inside the rootfs, not on the host.
    fs::remove_file(f.rootfs().join("etc/passwd")).unwrap();
    fs::create_dir_all(f.rootfs().join("host")).unwrap();
    fs::write(
        f.rootfs().join("host/passwd"),
        "inside:x:42:42::/:/bin/sh\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/host/passwd", f.rootfs().join("etc/passwd")).unwrap();
    let mut r = req();
    r.user = Some("inside".into());
    assert_eq!(f.ok(&r).0.process_user, (42, 42));
    std::os::unix::fs::symlink("../../../../../../etc", f.rootfs().join("escape")).unwrap();
    r.workdir = Some("/escape/peapod-test-dir".into());
    f.ok(&r);
    assert!(f.rootfs().join("etc/peapod-test-dir").is_dir());
    assert!(!Path::new("/etc/peapod-test-dir").exists());
}

#[test]
fn etc_files_and_their_mounts() {
    let mut f = Fixture::new();
    f.ip = Some("10.88.0.5".parse().unwrap());
    let (_, spec) = f.ok(&req());
    let hosts = fs::read_to_string(f.bundle().join("hosts")).unwrap();
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
    assert!(hosts.ends_with("10.88.0.5\t0123456789ab\n"));
    for name in ["hosts", "hostname", "resolv.conf"] {
        let m = mount(&spec, &format!("/etc/{name}")).unwrap();
        assert_eq!(m["source"], json!(f.bundle().join(name)));
        assert_eq!(m["type"], "bind");
        assert!(strings(&m["options"]).contains(&"rw".to_string()));
    }
    let resolv = fs::read_to_string(f.bundle().join("resolv.conf")).unwrap();
    assert!(resolv.contains("nameserver"));
    assert!(!resolv.contains("nameserver 127."));
}

#[test]
fn resolv_conf_rules() {
    let local = "search lan\nnameserver 127.0.0.53\noptions edns0\n";
    assert_eq!(resolv_conf(local, true), local);
    assert_eq!(
        resolv_conf(local, false),
        "search lan\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    );
    let mixed = "nameserver 127.0.0.1\nnameserver 1.1.1.1\n";
    assert_eq!(resolv_conf(mixed, false), "nameserver 1.1.1.1\n");
}

#[test]
fn default_mounts_and_security() {
    let f = Fixture::new();
    let (_, spec) = f.ok(&req());
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ] {
        assert!(mount(&spec, d).is_some(), "{d}");
    }
    assert!(strings(&mount(&spec, "/sys").unwrap()["options"]).contains(&"ro".into()));
    assert!(strings(&mount(&spec, "/dev/shm").unwrap()["options"]).contains(&"size=65536k".into()));
    let caps = strings(&spec["process"]["capabilities"]["bounding"]);
    assert_eq!(caps.len(), 14);
    assert!(caps.contains(&"CAP_NET_RAW".to_string()));
    assert_eq!(spec["process"]["capabilities"]["ambient"], json!([]));
    assert!(spec["linux"]["seccomp"].is_object());
    assert!(!spec["linux"]["maskedPaths"].as_array().unwrap().is_empty());
    assert!(
        !spec["linux"]["readonlyPaths"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(spec["process"]["noNewPrivileges"], false);
    let nofile = &spec["process"]["rlimits"][0];
    assert_eq!(nofile["type"], "RLIMIT_NOFILE");
    assert!(nofile["hard"].as_u64().unwrap() <= security::DEFAULT_NOFILE);
    assert_eq!(
        ns_types(&spec),
        vec!["mount", "cgroup", "network", "ipc", "pid", "uts"]
    );
    assert_eq!(spec["linux"]["resources"]["devices"][0]["allow"], false);
}

#[test]
fn capabilities_add_drop() {
    let f = Fixture::new();
    let caps = |add: &[&str], drop: &[&str]| {
        let mut r = req();
        r.cap_add = add.iter().map(|s| s.to_string()).collect();
        r.cap_drop = drop.iter().map(|s| s.to_string()).collect();
        f.run(&r)
            .map(|(_, s)| strings(&s["process"]["capabilities"]["effective"]))
    };
    let c = caps(&["net_admin", "CAP_SYS_PTRACE"], &["NET_RAW", "cap_mknod"]).unwrap();
    assert!(c.contains(&"CAP_NET_ADMIN".into()) && c.contains(&"CAP_SYS_PTRACE".into()));
    assert!(!c.contains(&"CAP_NET_RAW".into()) && !c.contains(&"CAP_MKNOD".into()));
    assert_eq!(c.len(), 14);
    assert_eq!(
        caps(&["NET_ADMIN"], &["ALL"]).unwrap(),
        vec!["CAP_NET_ADMIN"]
    );
    assert!(caps(&[], &["all"]).unwrap().is_empty());
    let all = caps(&["ALL"], &["SYS_ADMIN"]).unwrap();
    assert!(all.len() > 30 && !all.contains(&"CAP_SYS_ADMIN".into()));
    let e = caps(&["FLY"], &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("--cap-add \"FLY\": unknown capability"),
        "{e}"
    );
}

#[test]
fn privileged_lifts_the_walls() {
    let f = Fixture::new();
    let mut r = req();
    r.privileged = true;
    let (_, spec) = f.ok(&r);
    let linux = &spec["linux"];
    assert!(linux.get("seccomp").is_none());
    assert!(linux.get("maskedPaths").is_none());
    assert!(linux.get("readonlyPaths").is_none());
    assert!(!strings(&mount(&spec, "/sys").unwrap()["options"]).contains(&"ro".into()));
    assert_eq!(linux["resources"]["devices"][0]["allow"], true);
    assert!(strings(&spec["process"]["capabilities"]["bounding"]).len() > 30);
    pea_runtime::config::Bundle::load(&f.bundle()).unwrap();
}

#[test]
fn seccomp_modes() {
    let f = Fixture::new();
    let mut r = req();
    r.security.seccomp = SeccompMode::Unconfined;
    r.security.no_new_privileges = true;
    let (_, spec) = f.ok(&r);
    assert!(spec["linux"].get("seccomp").is_none());
    assert_eq!(spec["process"]["noNewPrivileges"], true);

    let (native, docker_arch) = security_native();
    let docker = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [{"architecture": native, "subArchitectures": []}],
        "syscalls": [
            {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_PTRACE"]}},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
             "includes": {"arches": [docker_arch]}, "comment": "x"},
            {"names": ["getppid"], "action": "SCMP_ACT_ALLOW",
             "excludes": {"caps": ["CAP_CHOWN"]}}
        ]
    });
    let path = f.tmp.path().join("profile.json");
    fs::write(&path, docker.to_string()).unwrap();
    r.security.seccomp = SeccompMode::File(path.clone());
    let (_, spec) = f.ok(&r);
    let sc = &spec["linux"]["seccomp"];
    assert_eq!(sc["architectures"], json!([native]));
    let names: Vec<String> = sc["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| strings(&s["names"]))
        .collect();
    assert_eq!(names, vec!["read", "write", "exit_group", "getpid"]);
    pea_runtime::config::Bundle::load(&f.bundle()).unwrap();

    fs::write(&path, "{not json").unwrap();
    let e = f.run(&r).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("seccomp profile {}", path.display())),
        "{e}"
    );
    r.security.seccomp = SeccompMode::File("/nonexistent/p.json".into());
    let e = f.run(&r).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/p.json"), "{e}");
}

fn security_native() -> (&'static str, &'static str) {
    if cfg!(target_arch = "aarch64") {
        ("SCMP_ARCH_AARCH64", "arm64")
    } else {
        ("SCMP_ARCH_X86_64", "amd64")
    }
}

#[test]
fn volumes_binds_and_tmpfs() {
    let mut f = Fixture::new();
    fs::create_dir_all(f.rootfs().join("data/sub")).unwrap();
    fs::write(f.rootfs().join("data/sub/file"), "image content").unwrap();
    std::os::unix::fs::symlink("sub/file", f.rootfs().join("data/link")).unwrap();
    fs::create_dir_all(f.rootfs().join("imgvol")).unwrap();
    fs::write(f.rootfs().join("imgvol/x"), "x").unwrap();
    let mut vols = BTreeMap::new();
    vols.insert("/imgvol".to_string(), json!({}));
    f.image = image(ContainerConfig {
        cmd: Some(vec!["sh".into()]),
        volumes: Some(vols),
        ..Default::default()
    });
    let host = f.tmp.path().join("host/missing");
    let mut r = req();
    r.read_only = true;
    r.volumes = vec![
        VolumeSpec {
            source: VolumeSource::Named("mydata".into()),
            target: "/data".into(),
            read_only: false,
        },
        VolumeSpec {
            source: VolumeSource::Bind(host.clone()),
            target: "/data/sub/bind".into(),
            read_only: true,
        },
        VolumeSpec {
            source: VolumeSource::Anonymous,
            target: "/anon".into(),
            read_only: false,
        },
    ];
    r.tmpfs = vec![
        TmpfsSpec {
            target: "/run".into(),
            options: vec!["size=1m".into()],
        },
        TmpfsSpec {
            target: "/dev/shm".into(),
            options: vec!["exec".into()],
        },
    ];
    let (out, spec) = f.ok(&r);
    assert_eq!(spec["root"]["readonly"], true);
    assert!(host.is_dir(), "a missing bind source is created");
    let data = f.store.path("mydata");
    assert_eq!(
        fs::read_to_string(data.join("sub/file")).unwrap(),
        "image content"
    );
    assert_eq!(
        fs::read_link(data.join("link")).unwrap(),
        PathBuf::from("sub/file")
    );
    let m = mount(&spec, "/data").unwrap();
    assert_eq!(m["source"], json!(data));
    let b = mount(&spec, "/data/sub/bind").unwrap();
    assert!(strings(&b["options"]).contains(&"ro".into()));
    let t = mount(&spec, "/run").unwrap();
    assert_eq!(
        strings(&t["options"]),
        vec!["nosuid", "nodev", "noexec", "size=1m"]
    );
    // A user mount replaces the default one at the same place.
    let shm: Vec<_> = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] == "/dev/shm")
        .collect();
    assert_eq!(shm.len(), 1);
    assert_eq!(strings(&shm[0]["options"]), vec!["nosuid", "nodev", "exec"]);
    // Parents before children.
    let dests: Vec<String> = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap().to_string())
        .collect();
    let pos = |d: &str| dests.iter().position(|x| x == d).unwrap();
    assert!(pos("/data") < pos("/data/sub/bind"));
    // Anonymous: the user's and the image's VOLUME.
    assert_eq!(out.anonymous_volumes.len(), 2);
    let imgvol = out
        .mounts
        .iter()
        .find(|m| m.destination == "/imgvol")
        .unwrap();
    assert_eq!(imgvol.typ, "volume");
    assert_eq!(fs::read_to_string(imgvol.source.join("x")).unwrap(), "x");
    let named = out
        .mounts
        .iter()
        .find(|m| m.destination == "/data")
        .unwrap();
    assert_eq!(named.name.as_deref(), Some("mydata"));
    assert!(named.rw);
    let bind = out
        .mounts
        .iter()
        .find(|m| m.destination == "/data/sub/bind")
        .unwrap();
    assert_eq!((bind.typ.as_str(), bind.rw), ("bind", false));
    assert!(f.store.get("mydata").is_ok());
    pea_runtime::config::Bundle::load(&f.bundle()).unwrap();

    // A volume that has content is not overwritten.
    fs::write(data.join("sub/file"), "mine").unwrap();
    f.ok(&r);
    assert_eq!(fs::read_to_string(data.join("sub/file")).unwrap(), "mine");

    r.tmpfs.push(TmpfsSpec {
        target: "/data".into(),
        options: vec![],
    });
    let e = f.run(&r).unwrap_err().to_string();
    assert!(
        e.starts_with("--tmpfs \"/data\": duplicate mount point"),
        "{e}"
    );
}

#[test]
fn namespace_plan_and_userns() {
    let mut f = Fixture::new();
    f.plan = NamespacePlan {
        net: NsChoice::Host,
        ipc: NsChoice::Join("/proc/1234/ns/ipc".into()),
        pid: NsChoice::New,
        uts: NsChoice::Host,
    };
    f.userns = Some(IdMapping::uniform(0, 100_000, 65536));
    let (_, spec) = f.ok(&req());
    assert_eq!(
        ns_types(&spec),
        vec!["mount", "cgroup", "ipc", "pid", "user"]
    );
    let ipc = spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["type"] == "ipc")
        .unwrap();
    assert_eq!(ipc["path"], "/proc/1234/ns/ipc");
    assert!(spec.get("hostname").is_none());
    assert_eq!(
        spec["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": 100000, "size": 65536}])
    );
    assert_eq!(spec["linux"]["gidMappings"][0]["hostID"], 100000);
    // No network namespace of its own in a user namespace: /sys is bound.
    assert_eq!(mount(&spec, "/sys").unwrap()["type"], "none");
    // Mount targets are made by the engine (the namespace's root may not
    // own the image's files).
    assert!(f.rootfs().join("etc/hostname").is_file());
    assert!(f.rootfs().join("etc/resolv.conf").is_file());
}

#[test]
fn resources_limits() {
    let f = Fixture::new();
    let mut r = req();
    r.resources.memory = Some(512 << 20);
    r.resources.nano_cpus = Some(1_500_000_000);
    r.resources.cpu_shares = Some(512);
    r.resources.cpuset_cpus = Some("0-1".into());
    r.resources.pids_limit = Some(100);
    let (_, spec) = f.ok(&r);
    let res = &spec["linux"]["resources"];
    assert_eq!(res["memory"]["limit"], 512 << 20);
    assert_eq!(res["memory"]["swap"], 1 << 30);
    assert_eq!(res["cpu"]["quota"], 150_000);
    assert_eq!(res["cpu"]["period"], 100_000);
    assert_eq!(res["cpu"]["shares"], 512);
    assert_eq!(res["cpu"]["cpus"], "0-1");
    assert_eq!(res["pids"]["limit"], 100);
    r.resources.memory_swap = Some(-1);
    assert_eq!(f.ok(&r).1["linux"]["resources"]["memory"]["swap"], -1);
    r.resources.memory_swap = Some(1);
    assert!(
        f.run(&r)
            .unwrap_err()
            .to_string()
            .starts_with("--memory-swap")
    );
    r.resources.memory = None;
    assert!(f.run(&r).unwrap_err().to_string().contains("set --memory"));
    r.resources.memory_swap = None;
    r.resources.cpuset_cpus = Some("a-b".into());
    assert!(
        f.run(&r)
            .unwrap_err()
            .to_string()
            .starts_with("--cpuset-cpus")
    );
}

#[test]
fn ulimits_and_their_ceiling() {
    let f = Fixture::new();
    let mut r = req();
    r.ulimits = vec![Ulimit {
        name: "nproc".into(),
        soft: 10,
        hard: 20,
    }];
    let (_, spec) = f.ok(&r);
    let rl = spec["process"]["rlimits"].as_array().unwrap();
    assert_eq!(
        rl[0],
        json!({"type": "RLIMIT_NPROC", "soft": 10, "hard": 20})
    );
    assert_eq!(rl[1]["type"], "RLIMIT_NOFILE");
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    if hard != crate::request_parse::UNLIMITED {
        r.ulimits = vec![Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: hard + 1,
        }];
        let e = f.run(&r).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "--ulimit \"nofile=1024:{}\": the hard limit may not exceed this host's {hard} \
                 (raising it needs CAP_SYS_RESOURCE)",
                hard + 1
            )
        );
    }
}

#[test]
fn stop_signal_init_and_labels() {
    let mut f = Fixture::new();
    f.image = image(ContainerConfig {
        cmd: Some(vec!["sh".into()]),
        stop_signal: Some("SIGQUIT".into()),
        ..Default::default()
    });
    let mut r = req();
    r.init = true;
    r.labels.insert("com.example.a".into(), "b".into());
    let (out, spec) = f.ok(&r);
    assert_eq!(out.stop_signal, libc::SIGQUIT);
    assert_eq!(spec["annotations"][INIT_ANNOTATION], "true");
    assert_eq!(spec["annotations"]["com.example.a"], "b");
    r.stop_signal = Some("KILL".into());
    assert_eq!(f.ok(&r).0.stop_signal, libc::SIGKILL);
    r.stop_signal = Some("10".into());
    assert_eq!(f.ok(&r).0.stop_signal, 10);
    r.stop_signal = Some("SIGNOPE".into());
    let e = f.run(&r).unwrap_err().to_string();
    assert!(e.starts_with("--stop-signal \"SIGNOPE\""), "{e}");
}

#[test]
fn plan_from_request() {
    let join = |c: &str, ns: &str| -> Result<PathBuf, BundleError> {
        if c == "missing" {
            Err(BundleError::flag("--network", c, "no such container"))
        } else {
            Ok(PathBuf::from(format!("/proc/{c}/ns/{ns}")))
        }
    };
    assert_eq!(
        NamespacePlan::from_request(&req(), &join).unwrap(),
        NamespacePlan::default()
    );
    let mut r = req();
    r.network = crate::request::NetworkMode::Container("42".into());
    r.ipc = crate::request::IpcMode::Host;
    r.pid = crate::request::PidMode::Container("7".into());
    r.uts = crate::request::UtsMode::Host;
    let p = NamespacePlan::from_request(&r, &join).unwrap();
    assert_eq!(p.net, NsChoice::Join("/proc/42/ns/net".into()));
    assert_eq!(p.ipc, NsChoice::Host);
    assert_eq!(p.pid, NsChoice::Join("/proc/7/ns/pid".into()));
    assert_eq!(p.uts, NsChoice::Host);
    r.network = crate::request::NetworkMode::Container("missing".into());
    assert!(NamespacePlan::from_request(&r, &join).is_err());
}

#[test]
fn a_failed_plan_removes_the_anonymous_volumes_it_made() {
    let f = Fixture::new();
    let mut r = req();
    r.volumes.push(VolumeSpec {
        source: VolumeSource::Anonymous,
        target: "/cache".into(),
        read_only: false,
    });
    // Fails after the anonymous volume for /cache was made.
    r.tmpfs.push(TmpfsSpec {
        target: "/cache".into(),
        options: vec![],
    });
    assert!(f.run(&r).is_err());
    assert!(f.store.list().unwrap().is_empty(), "{:?}", f.store.list());
}
