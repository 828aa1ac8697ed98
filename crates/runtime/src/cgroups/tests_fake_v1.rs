//! Unit tests against fake cgroup v1 trees in a temporary directory, and
//! the helpers the other fake-tree tests share.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceType, LinuxHugepageLimitBuilder,
    LinuxInterfacePriorityBuilder, LinuxMemoryBuilder, LinuxNetworkBuilder, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
};
use tempfile::TempDir;

use super::devices::tests::rule;
use super::*;

pub(crate) const MB: i64 = 1 << 20;

pub(crate) fn touch(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

pub(crate) fn read(path: PathBuf) -> String {
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

pub(crate) fn no_systemd() -> bool {
    false
}

/// A v1-only host: cpu,cpuacct co-mounted, memory, pids, blkio, devices,
/// freezer, cpuset, hugetlb, net_cls and name=systemd; no net_prio.
pub(crate) fn fake_v1(tmp: &TempDir) -> Layout {
    let b = tmp.path().display().to_string();
    let mounts = [
        ("cpu,cpuacct", "cpu,cpuacct"),
        ("memory", "memory"),
        ("pids", "pids"),
        ("blkio", "blkio"),
        ("devices", "devices"),
        ("freezer", "freezer"),
        ("cpuset", "cpuset"),
        ("hugetlb", "hugetlb"),
        ("net_cls", "net_cls"),
        ("systemd", "xattr,name=systemd"),
    ];
    let mut mi = String::new();
    let mut pc = String::new();
    for (i, (dir, opts)) in mounts.iter().enumerate() {
        mi.push_str(&format!(
            "{} 1 0:{i} / {b}/{dir} rw shared:{i} - cgroup cgroup rw,{opts}\n",
            40 + i
        ));
        let ctrls = opts.trim_start_matches("xattr,");
        pc.push_str(&format!("{}:{ctrls}:/user\n", i + 1));
        fs::create_dir_all(tmp.path().join(dir)).unwrap();
    }
    touch(
        &tmp.path().join("cpuset"),
        &[("cpuset.cpus", "0-3\n"), ("cpuset.mems", "0\n")],
    );
    Layout::parse(&mi, &pc).unwrap()
}

/// Fake per-container files for the v1 layout at cgroup path "/c".
pub(crate) fn fake_v1_leaf(tmp: &TempDir) {
    let p = tmp.path();
    touch(
        &p.join("cpu,cpuacct/c"),
        &[
            ("cpu.shares", ""),
            ("cpu.cfs_period_us", ""),
            ("cpu.cfs_quota_us", ""),
            ("cpu.cfs_burst_us", ""),
            ("cpu.rt_period_us", ""),
            ("cpu.rt_runtime_us", ""),
            (
                "cpu.stat",
                "nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n",
            ),
            ("cpuacct.usage", "123456\n"),
            ("cpuacct.usage_percpu", "100000 23456 \n"),
            ("cpuacct.stat", "user 2\nsystem 1\n"),
            ("cgroup.procs", ""),
        ],
    );
    touch(
        &p.join("memory/c"),
        &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("memory.soft_limit_in_bytes", ""),
            ("memory.swappiness", ""),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n",
            ),
            ("memory.usage_in_bytes", "4096\n"),
            ("memory.max_usage_in_bytes", "8192\n"),
            ("memory.failcnt", "1\n"),
            ("memory.stat", "cache 512\nrss 1024\n"),
            ("cgroup.procs", ""),
        ],
    );
    touch(
        &p.join("pids/c"),
        &[("pids.max", "max\n"), ("pids.current", "3\n")],
    );
    touch(
        &p.join("blkio/c"),
        &[
            ("blkio.bfq.weight", ""),
            ("blkio.throttle.read_bps_device", ""),
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
            ),
            (
                "blkio.throttle.io_serviced_recursive",
                "8:0 Read 1\nTotal 1\n",
            ),
        ],
    );
    touch(
        &p.join("devices/c"),
        &[("devices.allow", ""), ("devices.deny", "")],
    );
    touch(&p.join("freezer/c"), &[("freezer.state", "THAWED\n")]);
    touch(
        &p.join("cpuset/c"),
        &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
    );
    touch(
        &p.join("hugetlb/c"),
        &[
            ("hugetlb.2MB.limit_in_bytes", ""),
            ("hugetlb.2MB.rsvd.limit_in_bytes", ""),
            ("hugetlb.2MB.usage_in_bytes", "2097152\n"),
            ("hugetlb.2MB.failcnt", "0\n"),
        ],
    );
    touch(&p.join("net_cls/c"), &[("net_cls.classid", "")]);
}

pub(crate) fn resources() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100 * MB)
                .swap(200 * MB)
                .reservation(50 * MB)
                .swappiness(10u64)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0-1")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(10i64).build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn v1_create_initialises_cpuset_and_applies_files() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = fake_v1(&tmp);
    assert_eq!(layout.kind(), LayoutKind::V1);
    fake_v1_leaf(&tmp);
    let m = layout.open(Path::new("/c")).unwrap();
    m.create().unwrap();
    let p = tmp.path();
    assert_eq!(read(p.join("cpuset/c/cpuset.cpus")), "0-3");
    assert_eq!(read(p.join("cpuset/c/cpuset.mems")), "0");
    assert!(
        p.join("systemd/c").is_dir(),
        "named hierarchy gets the leaf too"
    );

    let mut r = resources();
    r.set_hugepage_limits(Some(vec![
        LinuxHugepageLimitBuilder::default()
            .page_size("2MB")
            .limit(4 * MB)
            .build()
            .unwrap(),
    ]));
    r.set_network(Some(
        LinuxNetworkBuilder::default()
            .class_id(0x10001u32)
            .build()
            .unwrap(),
    ));
    r.set_block_io(Some(
        LinuxBlockIoBuilder::default()
            .weight(300u16)
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
    r.set_devices(Some(vec![
        rule(false, LinuxDeviceType::A, None, None, "rwm"),
        rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
    ]));
    m.apply(&r).unwrap();
    assert_eq!(
        read(p.join("memory/c/memory.limit_in_bytes")),
        (100 * MB).to_string()
    );
    assert_eq!(
        read(p.join("memory/c/memory.memsw.limit_in_bytes")),
        (200 * MB).to_string()
    );
    assert_eq!(
        read(p.join("memory/c/memory.soft_limit_in_bytes")),
        (50 * MB).to_string()
    );
    assert_eq!(read(p.join("memory/c/memory.swappiness")), "10");
    assert_eq!(read(p.join("cpu,cpuacct/c/cpu.shares")), "512");
    assert_eq!(read(p.join("cpu,cpuacct/c/cpu.cfs_quota_us")), "50000");
    assert_eq!(read(p.join("cpu,cpuacct/c/cpu.cfs_period_us")), "100000");
    assert_eq!(read(p.join("cpuset/c/cpuset.cpus")), "0-1");
    assert_eq!(read(p.join("pids/c/pids.max")), "10");
    assert_eq!(
        read(p.join("hugetlb/c/hugetlb.2MB.limit_in_bytes")),
        (4 * MB).to_string()
    );
    assert_eq!(
        read(p.join("hugetlb/c/hugetlb.2MB.rsvd.limit_in_bytes")),
        (4 * MB).to_string()
    );
    assert_eq!(read(p.join("net_cls/c/net_cls.classid")), "65537");
    assert_eq!(
        read(p.join("blkio/c/blkio.bfq.weight")),
        "300",
        "BFQ fallback"
    );
    assert_eq!(
        read(p.join("blkio/c/blkio.throttle.read_bps_device")),
        "8:0 1000"
    );
    // Files are truncated per write: the last rule of each file remains.
    assert_eq!(read(p.join("devices/c/devices.deny")), "a");
    assert_eq!(read(p.join("devices/c/devices.allow")), "c 1:3 rwm");
}

#[test]
fn v1_refuses_what_the_host_lacks_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = fake_v1(&tmp);
    fake_v1_leaf(&tmp);
    let m = layout.open(Path::new("/c")).unwrap();
    let mut r = resources();
    r.set_network(Some(
        LinuxNetworkBuilder::default()
            .priorities(vec![
                LinuxInterfacePriorityBuilder::default()
                    .name("eth0")
                    .priority(5u32)
                    .build()
                    .unwrap(),
            ])
            .build()
            .unwrap(),
    ));
    let msg = m.apply(&r).unwrap_err().to_string();
    assert!(
        msg.contains("network.priorities") && msg.contains("net_prio"),
        "{msg}"
    );
    assert_eq!(
        read(tmp.path().join("pids/c/pids.max")),
        "max",
        "nothing written"
    );

    let unified = LinuxResourcesBuilder::default()
        .unified(HashMap::from([(
            "memory.high".to_string(),
            "1M".to_string(),
        )]))
        .build()
        .unwrap();
    let msg = m.apply(&unified).unwrap_err().to_string();
    assert!(msg.contains("unified[\"memory.high\"]"), "{msg}");

    fs::remove_file(tmp.path().join("blkio/c/blkio.bfq.weight")).unwrap();
    let weight = LinuxResourcesBuilder::default()
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(300u16)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let msg = m.apply(&weight).unwrap_err().to_string();
    assert!(
        msg.contains("blockIO.weight") && msg.contains("blkio.weight"),
        "{msg}"
    );

    let huge = LinuxResourcesBuilder::default()
        .hugepage_limits(vec![
            LinuxHugepageLimitBuilder::default()
                .page_size("1GB")
                .limit(1i64)
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap();
    let msg = m.apply(&huge).unwrap_err().to_string();
    assert!(
        msg.contains("hugepageLimits[1GB]") && msg.contains("2MB"),
        "{msg}"
    );

    let bad_swap = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(2 * MB)
                .swap(MB)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert!(
        m.apply(&bad_swap)
            .unwrap_err()
            .to_string()
            .contains("memory.swap")
    );
}

#[test]
fn v1_lowers_limit_before_memsw() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = fake_v1(&tmp);
    fake_v1_leaf(&tmp);
    let m = layout.open(Path::new("/c")).unwrap();
    // Current limit 1 GiB: a 200 MiB memsw must come after the new limit.
    // The fake cannot enforce ordering, but both files must end right.
    fs::write(
        tmp.path().join("memory/c/memory.limit_in_bytes"),
        "1073741824",
    )
    .unwrap();
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100 * MB)
                .swap(200 * MB)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    m.apply(&r).unwrap();
    assert_eq!(
        read(tmp.path().join("memory/c/memory.limit_in_bytes")),
        (100 * MB).to_string()
    );
    assert_eq!(
        read(tmp.path().join("memory/c/memory.memsw.limit_in_bytes")),
        (200 * MB).to_string()
    );
}

#[test]
fn v1_stats_freezer_and_oom_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = fake_v1(&tmp);
    fake_v1_leaf(&tmp);
    let m = layout.open(Path::new("/c")).unwrap();
    let s = m.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 123_456);
    assert_eq!(s.cpu.usage.percpu, vec![100_000, 23_456]);
    assert!(s.cpu.usage.user > 0 && s.cpu.usage.kernel > 0);
    assert_eq!(s.cpu.throttling.throttled_periods, 2);
    assert_eq!(s.memory.usage.usage, 4096);
    assert_eq!(s.memory.usage.max, 8192);
    assert_eq!(s.memory.cache, 512);
    assert_eq!(s.memory.event_count.oom_kill, 4);
    assert_eq!(s.pids.current, 3);
    assert_eq!(s.blkio.io_service_bytes_recursive[0].value, 4096);
    assert_eq!(s.blkio.io_serviced_recursive.len(), 1);
    assert_eq!(s.hugetlb["2MB"].usage, 2 * MB as u64);
    assert_eq!(m.oom_kill_count().unwrap(), 4);
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Thawed);
    // The fake file keeps what we write, so the state is reached at once.
    m.freeze(FreezerState::Frozen).unwrap();
    assert_eq!(m.freezer_state().unwrap(), FreezerState::Frozen);
    m.freeze(FreezerState::Thawed).unwrap();
    let names: Vec<String> = m.mount_sources().into_iter().map(|(_, n)| n).collect();
    assert!(names.contains(&"cpu,cpuacct".to_string()) && names.contains(&"systemd".to_string()));
}
