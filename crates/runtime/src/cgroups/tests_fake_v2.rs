//! Unit tests against fake cgroup v2 and hybrid trees in a temporary
//! directory, and of the manager factory.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
    LinuxNetworkBuilder, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
};
use tempfile::TempDir;

use super::layout::tests::{HYBRID_PROC_CGROUP, hybrid_mountinfo};
use super::tests_fake_v1::{MB, fake_v1, no_systemd, read, resources, touch};
use super::*;
/// A pure v2 host with the usual controllers and a fake leaf "/c".
fn fake_v2(tmp: &TempDir) -> Layout {
    let b = tmp.path().display().to_string();
    let mi = format!("29 23 0:26 / {b} rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n");
    let ctrls = "cpuset cpu io memory hugetlb pids\n";
    touch(
        tmp.path(),
        &[
            ("cgroup.controllers", ctrls),
            ("cgroup.subtree_control", ""),
        ],
    );
    touch(
        &tmp.path().join("c"),
        &[
            ("cgroup.controllers", ctrls),
            ("cgroup.procs", ""),
            ("cgroup.freeze", "0\n"),
            ("cgroup.events", "populated 0\nfrozen 1\n"),
            ("cpu.weight", ""),
            ("cpu.max", "max 100000\n"),
            (
                "cpu.stat",
                "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 4\nnr_throttled 1\nthrottled_usec 7\n",
            ),
            ("cpuset.cpus", ""),
            ("memory.max", "max\n"),
            ("memory.swap.max", "max\n"),
            ("memory.low", ""),
            ("memory.high", ""),
            ("memory.current", "8192\n"),
            ("memory.swap.current", "0\n"),
            ("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
            ("memory.stat", "anon 100\nfile 200\n"),
            ("pids.max", "max\n"),
            ("pids.current", "2\n"),
            ("io.weight", ""),
            ("io.max", ""),
            (
                "io.stat",
                "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
            ),
            ("hugetlb.2MB.max", ""),
            ("hugetlb.2MB.rsvd.max", ""),
            ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.events", "max 3\n"),
        ],
    );
    Layout::parse(&mi, "0::/\n").unwrap()
}

#[test]
fn v2_converts_v1_shaped_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = fake_v2(&tmp);
    assert_eq!(layout.kind(), LayoutKind::V2);
    let m = layout.open(Path::new("/c")).unwrap();
    m.create().unwrap();
    assert!(read(tmp.path().join("cgroup.subtree_control")).starts_with('+'));
    let mut r = resources();
    r.set_memory(Some(
        LinuxMemoryBuilder::default()
            .limit(100 * MB)
            .swap(300 * MB)
            .reservation(MB)
            .build()
            .unwrap(),
    ));
    r.set_cpu(Some(
        LinuxCpuBuilder::default()
            .shares(1024u64)
            .period(50_000u64)
            .cpus("1")
            .build()
            .unwrap(),
    ));
    r.set_block_io(Some(
        LinuxBlockIoBuilder::default()
            .weight(500u16)
            .throttle_read_bps_device(vec![
                LinuxThrottleDeviceBuilder::default()
                    .major(8i64)
                    .minor(0i64)
                    .rate(1000u64)
                    .build()
                    .unwrap(),
            ])
            .build()
            .unwrap(),
    ));
    r.set_hugepage_limits(Some(vec![
        LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(-1i64)
            .build()
            .unwrap(),
    ]));
    r.set_unified(Some(HashMap::from([(
        "memory.high".to_string(),
        "90M".to_string(),
    )])));
    m.apply(&r).unwrap();
    let p = tmp.path().join("c");
    assert_eq!(read(p.join("cpu.weight")), "100");
    assert_eq!(
        read(p.join("cpu.max")),
        "max 50000",
        "quota kept, period set"
    );
    assert_eq!(read(p.join("cpuset.cpus")), "1");
    assert_eq!(read(p.join("memory.max")), (100 * MB).to_string());
    assert_eq!(read(p.join("memory.swap.max")), (200 * MB).to_string());
    assert_eq!(read(p.join("memory.low")), MB.to_string());
    assert_eq!(read(p.join("memory.high")), "90M");
    assert_eq!(read(p.join("pids.max")), "10");
    assert_eq!(read(p.join("io.weight")), "default 4950");
    assert_eq!(read(p.join("io.max")), "8:0 rbps=1000");
    assert_eq!(read(p.join("hugetlb.2MB.max")), "max");
    assert_eq!(read(p.join("hugetlb.2MB.rsvd.max")), "max");

    let quota = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .quota(20_000i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    m.apply(&quota).unwrap();
    assert_eq!(read(p.join("cpu.max")), "20000 100000");
}

#[test]
fn v2_refuses_v1_only_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let m = fake_v2(&tmp).open(Path::new("/c")).unwrap();
    let cases = [
        (
            LinuxResourcesBuilder::default()
                .memory(
                    LinuxMemoryBuilder::default()
                        .swappiness(5u64)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
            "memory.swappiness",
        ),
        (
            LinuxResourcesBuilder::default()
                .cpu(
                    LinuxCpuBuilder::default()
                        .realtime_runtime(5i64)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
            "cpu.realtimeRuntime",
        ),
        (
            LinuxResourcesBuilder::default()
                .network(
                    LinuxNetworkBuilder::default()
                        .class_id(1u32)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
            "network.classID",
        ),
        (
            LinuxResourcesBuilder::default()
                .unified(HashMap::from([("rdma.max".to_string(), "x".to_string())]))
                .build()
                .unwrap(),
            "unified[\"rdma.max\"]",
        ),
        (
            LinuxResourcesBuilder::default()
                .unified(HashMap::from([("../x".to_string(), "1".to_string())]))
                .build()
                .unwrap(),
            "unified[\"../x\"]",
        ),
    ];
    for (r, field) in cases {
        let msg = m.apply(&r).unwrap_err().to_string();
        assert!(msg.contains(field), "{field}: {msg}");
    }
}

#[test]
fn v2_stats_freeze_and_oom_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let m = fake_v2(&tmp).open(Path::new("/c")).unwrap();
    let s = m.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 5000);
    assert_eq!(s.cpu.usage.kernel, 2000);
    assert_eq!(s.cpu.throttling.throttled_time, 7000);
    assert_eq!(s.memory.usage.usage, 8192);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.failcnt, 2);
    assert_eq!(s.memory.cache, 200);
    assert_eq!(s.memory.event_count.oom_kill, 1);
    assert_eq!(s.pids.current, 2);
    assert_eq!(s.pids.limit, 0);
    assert_eq!(s.blkio.io_service_bytes_recursive[1].value, 20);
    assert_eq!(s.hugetlb["2MB"].failcnt, 3);
    assert_eq!(m.oom_kill_count().unwrap(), 1);
    m.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(read(tmp.path().join("c/cgroup.freeze")), "1");
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    assert_eq!(
        m.mount_sources(),
        vec![(tmp.path().join("c"), String::new())]
    );
}

#[test]
fn hybrid_routes_hugetlb_to_unified_and_rest_to_v1() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().display().to_string();
    let layout = Layout::parse(&hybrid_mountinfo(&b), HYBRID_PROC_CGROUP).unwrap();
    assert_eq!(layout.kind(), LayoutKind::Hybrid);
    let p = tmp.path();
    touch(
        &p.join("unified"),
        &[
            ("cgroup.controllers", "hugetlb\n"),
            ("cgroup.subtree_control", ""),
        ],
    );
    touch(
        &p.join("unified/c"),
        &[
            ("cgroup.controllers", "hugetlb\n"),
            ("hugetlb.2MB.max", ""),
            ("memory.high", ""),
        ],
    );
    touch(&p.join("memory/c"), &[("memory.limit_in_bytes", "")]);
    touch(
        &p.join("cpuset"),
        &[("cpuset.cpus", "0\n"), ("cpuset.mems", "0\n")],
    );
    touch(
        &p.join("cpuset/c"),
        &[("cpuset.cpus", "0\n"), ("cpuset.mems", "0\n")],
    );
    let m = layout.open(Path::new("/c")).unwrap();
    m.create().unwrap();
    assert_eq!(read(p.join("unified/cgroup.subtree_control")), "+hugetlb");
    let r = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(MB).build().unwrap())
        .hugepage_limits(vec![
            LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(MB)
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap();
    m.apply(&r).unwrap();
    assert_eq!(
        read(p.join("memory/c/memory.limit_in_bytes")),
        MB.to_string()
    );
    assert_eq!(read(p.join("unified/c/hugetlb.2MB.max")), MB.to_string());
    // memory lives on v1 here, so a unified memory key cannot be honoured.
    let u = LinuxResourcesBuilder::default()
        .unified(HashMap::from([(
            "memory.high".to_string(),
            "1M".to_string(),
        )]))
        .build()
        .unwrap();
    let msg = m.apply(&u).unwrap_err().to_string();
    assert!(
        msg.contains("unified[\"memory.high\"]") && msg.contains("hugetlb"),
        "{msg}"
    );
    let names: Vec<String> = m.mount_sources().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names.len(), 10);
    assert_eq!(names.last().map(String::as_str), Some("unified"));
}

#[test]
fn factory_paths_systemd_and_idempotent_destroy() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().display().to_string();
    let hybrid = Layout::parse(&hybrid_mountinfo(&b), HYBRID_PROC_CGROUP).unwrap();
    let m = hybrid
        .manager_with_probe(None, "abc", false, no_systemd)
        .unwrap();
    assert_eq!(m.path(), Path::new("/pea/abc"));
    // Never created: destroy must still succeed, twice.
    m.destroy().unwrap();
    m.destroy().unwrap();
    let err = hybrid
        .manager_with_probe(Some("rel/x"), "a", false, no_systemd)
        .unwrap_err();
    assert!(
        matches!(err, CgroupError::AmbiguousRelativePath { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("memory: /process_api/abc"),
        "{err}"
    );

    let v1 = fake_v1(&tmp);
    let m = v1
        .manager_with_probe(Some("rel/x"), "a", false, no_systemd)
        .unwrap();
    assert_eq!(m.path(), Path::new("/user/rel/x"));
    let v2 = Layout::parse(
        &format!("1 2 0:3 /kube {b} rw - cgroup2 cgroup2 rw\n"),
        "0::/kube/me\n",
    )
    .unwrap();
    let m = v2
        .manager_with_probe(Some("sub"), "a", false, no_systemd)
        .unwrap();
    assert_eq!(m.path(), Path::new("/me/sub"));
    assert_eq!(v2.open(m.path()).unwrap().path(), Path::new("/me/sub"));
    assert!(v2.open(Path::new("me/sub")).is_err());

    let err = v2
        .manager_with_probe(None, "a", true, no_systemd)
        .unwrap_err();
    assert!(
        matches!(err, CgroupError::SystemdUnavailable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("not PID 1"));
    let err = v2
        .manager_with_probe(Some("system.slice:pea:a"), "a", false, no_systemd)
        .unwrap_err();
    assert!(err.to_string().contains("slice:prefix:name"), "{err}");
    let err = v2.manager_with_probe(None, "a", true, || true).unwrap_err();
    assert!(matches!(err, CgroupError::SystemdNotImplemented));
    // The real probe: this host has no systemd.
    if !super::path::systemd_running() {
        let err = v2.manager(None, "a", true).unwrap_err();
        assert!(matches!(err, CgroupError::SystemdUnavailable { .. }));
    }
}
