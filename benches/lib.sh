# shellcheck shell=bash
# Setup shared by benches/engine.sh and benches/pods.sh (peapod against Podman):
# the release peapod binary, a private Podman (storage, run root, tmp dir,
# containers.conf), the same busybox image in both engines, free subnets, the
# host's load and fsync latency, and leftover processes at exit.
# Source it after scripts/lib/common.sh; it defines functions and `pm`, and sets
# variables only when a function says so.

# The release peapod: $PEAPOD, else $CARGO_TARGET_DIR (or target)/release/peapod,
# built when missing.
bench_peapod_binary() {
    if [[ -n "${PEAPOD:-}" ]]; then
        [[ -x "$PEAPOD" ]] || die "PEAPOD=$PEAPOD is not an executable"
        printf '%s\n' "$PEAPOD"
        return
    fi
    local bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/peapod"
    if [[ ! -x "$bin" ]]; then
        ensure_cargo
        say "building $bin (cargo build --release -p peapod-cli --bin peapod)"
        (cd "$REPO_ROOT" && cargo build --release -p peapod-cli --bin peapod >&2)
    fi
    printf '%s\n' "$bin"
}

# bench_podman_setup DIR RUNTIME: a Podman of its own in DIR: configuration,
# storage, run root, tmp dir (state, locks) and CNI network dir. No default
# ulimits (root here cannot raise rlimits above the current hard limit),
# cgroupfs, file events and file locks (the default shm lock file
# /dev/shm/libpod_lock would be shared with every other Podman). Exports
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF; sets pmdir, podman_flags (the
# global flags without --runtime) and pm (the command's words, --runtime
# RUNTIME included) for the function pm.
bench_podman_setup() {
    pmdir="$1"
    local runtime="$2"
    mkdir -p "$pmdir"
    cat >"$pmdir/containers.conf" <<EOF
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$pmdir/events.log"
tmp_dir = "$pmdir/tmp"
lock_type = "file"

[network]
network_config_dir = "$pmdir/net"
EOF
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
        "$pmdir/root" "$pmdir/runroot" >"$pmdir/storage.conf"
    export CONTAINERS_CONF="$pmdir/containers.conf" CONTAINERS_STORAGE_CONF="$pmdir/storage.conf"
    unset CONTAINER_HOST CONTAINER_CONNECTION
    podman_flags="--root $pmdir/root --runroot $pmdir/runroot --tmpdir $pmdir/tmp --storage-driver overlay --cgroup-manager cgroupfs --events-backend file"
    pm="podman $podman_flags --runtime $runtime"
}
# shellcheck disable=SC2086 # $pm is words on purpose (paths without spaces)
pm() { $pm "$@"; }

# bench_free_subnets N: N free 10.X.0.0/24 subnets, one a line (none of the
# host's addresses or routes overlap them).
bench_free_subnets() {
    python3 - "$1" <<'PY'
import ipaddress, json, subprocess, sys
used = []
for what in (["addr"], ["route"]):
    for e in json.loads(subprocess.run(["ip", "-j", "-4", *what], capture_output=True, text=True).stdout or "[]"):
        for a in e.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
        dst = e.get("dst")
        if dst and dst != "default":
            used.append(ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False))
free = [n for x in range(200, 255) for n in [ipaddress.ip_network(f"10.{x}.0.0/24")]
        if not any(n.overlaps(u) for u in used)]
for n in free[:int(sys.argv[1])]:
    print(n)
PY
}

# bench_podman_bridge NETWORK BRIDGE: Podman 4.3 has no --interface-name: name
# the bridge of Podman network NETWORK in the config list it wrote.
bench_podman_bridge() {
    python3 - "$pmdir/net/$1.conflist" "$2" <<'PY'
import json, sys
path, bridge = sys.argv[1:]
conf = json.load(open(path))
conf["plugins"][0]["bridge"] = bridge
json.dump(conf, open(path, "w"), indent=3)
PY
}

# bench_rename_network DIR FROM TO [LEASES]: rename peapod network FROM (config
# list DIR/FROM.conflist) to TO (DIR/TO.conflist), keeping everything else as
# peapod wrote it; LEASES sets host-local's lease dir. So `peapod network create`
# makes a private copy of the default network `peapod` (which `network rm`
# refuses), and the copy goes back to FROM for `peapod network rm`, which
# removes its host rules and bridge.
bench_rename_network() {
    python3 - "$@" <<'PY'
import json, os, sys
d, old, new = sys.argv[1:4]
conf = json.load(open(f"{d}/{old}.conflist"))
conf["name"] = new
if len(sys.argv) > 4:
    conf["plugins"][0]["ipam"]["dataDir"] = sys.argv[4]
json.dump(conf, open(f"{d}/{new}.conflist", "w"), indent=2)
os.remove(f"{d}/{old}.conflist")
PY
}

# bench_busybox_image TMP: the busybox image in both engines: built by
# `peapod image build-from-host` from /bin/busybox, exported as an oci-archive
# TMP/busybox.tar and loaded into Podman. Dies unless both have the same image
# id; sets pp_id and pm_id.
bench_busybox_image() {
    local tmp="$1"
    say "peapod: building the busybox image from /bin/busybox in $PEAPOD_ROOT"
    "$peapod" image build-from-host busybox /bin/busybox >/dev/null
    "$peapod" image export busybox "$tmp/busybox.tar" --format oci-archive
    # `podman load` adds the blob to /var/lib/containers/cache/blob-info-cache-v1.boltdb
    # whatever --root says: load in a mount namespace with a tmpfs over that directory.
    say "podman: loading the same image (oci-archive) into $pmdir/root"
    if [[ -d /var/lib/containers/cache ]]; then
        # shellcheck disable=SC2086
        unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /var/lib/containers/cache && exec "$@"' \
            sh $pm load --quiet --input "$tmp/busybox.tar" >/dev/null
    else
        pm load --quiet --input "$tmp/busybox.tar" >/dev/null
        echo "note: podman load created /var/lib/containers/cache (blob info cache); it is left"
    fi
    pp_id="$("$peapod" image inspect busybox | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')"
    pm_id="$(pm image inspect --format '{{.Id}}' busybox)"
    [[ "${pp_id#sha256:}" == "${pm_id#sha256:}" ]] || die "image ids differ: peapod $pp_id, podman $pm_id"
}

# bench_crun_note RUNTIME [RUN FLAGS...]: when Podman does not use crun, one
# `podman run --rm RUN FLAGS --network none busybox true` with crun says whether
# crun could run here (1.8 refuses hybrid cgroup hosts); prints a note.
bench_crun_note() {
    local runtime="$1" err
    shift
    if [[ $(basename "$runtime") == crun ]] || ! command -v crun >/dev/null; then
        echo "crun not probed"
        return
    fi
    # shellcheck disable=SC2086
    if err="$(podman $podman_flags --runtime "$(command -v crun)" run --rm "$@" --network none busybox true 2>&1)"; then
        echo "crun works here too (PODMAN_RUNTIME=crun to use it)"
    else
        echo "crun cannot run here ($(tail -n1 <<<"$err" | cut -c1-120))"
    fi
}

# bench_host_note DIR: the host's cpus and load, and the current latency of one
# fsync in DIR (peapod fsyncs its records, and Podman its database: a disk busy
# with other writers slows both).
bench_host_note() {
    local fsync_ms
    fsync_ms="$(python3 - "$1" <<'PY'
import os, statistics, sys, time
path, times = os.path.join(sys.argv[1], "fsync-probe"), []
for i in range(20):
    with open(path, "w") as f:
        f.write("x" * 512 + str(i))
        t = time.perf_counter()
        f.flush()
        os.fsync(f.fileno())
        times.append(time.perf_counter() - t)
os.unlink(path)
print(f"{statistics.median(times) * 1000:.2f}")
PY
)"
    echo "host: $(nproc) cpus, load average $(cut -d' ' -f1-3 /proc/loadavg) (figures are noisy while the host is busy)"
    echo "disk: one fsync of a small file in $1 takes $fsync_ms ms now (median of 20)"
}

# bench_pids_mentioning DIR: processes (not this shell) whose command line
# mentions DIR: leftover supervisors, monitors, conmons and `podman container
# cleanup`s of this run.
bench_pids_mentioning() {
    local d pid
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [[ $pid != "$$" && $pid != "$BASHPID" ]] || continue
        { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF "$1" && echo "$pid"
    done
    return 0
}

# bench_end_leftovers DIR: waits (10 s at most) for the processes mentioning DIR
# to end (conmon runs `podman container cleanup` when a container ends), then
# SIGKILLs those left and their descendants (a pod's infra process and
# containers do not mention DIR).
bench_end_leftovers() {
    local dir="$1" pid left kids
    for _ in $(seq 100); do
        [[ -z "$(bench_pids_mentioning "$dir")" ]] && return 0
        sleep 0.1
    done
    left="$(bench_pids_mentioning "$dir")"
    kids="$left"
    # Descendants, found before anything dies (and is reparented).
    while [[ -n "$kids" ]]; do
        kids="$(for pid in $kids; do cat /proc/"$pid"/task/*/children 2>/dev/null; done | tr ' ' '\n' | grep . || true)"
        left="$left $kids"
    done
    for pid in $left; do
        echo "cleanup: killing leftover process $pid: $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)" >&2
        kill -9 "$pid" 2>/dev/null
    done
    return 0
}

# bench_end_host DIR NETNS_EXISTED PATTERN: the host state both engines may
# leave: /run/netns when Podman made it (NETNS_EXISTED false) and it is
# empty, the mounts under DIR (peapod's netns dir, Podman's overlay home),
# and a warning for iptables rules matching PATTERN.
bench_end_host() {
    local dir="$1" netns_existed="$2" pattern="$3" m
    if [[ $netns_existed == false && -d /run/netns && -z "$(ls -A /run/netns)" ]]; then
        mountpoint -q /run/netns && umount /run/netns
        rmdir /run/netns 2>/dev/null
    fi
    for m in $(mounts_under "$dir" | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    if iptables-save 2>/dev/null | grep -qE "$pattern"; then
        echo "cleanup: warning: iptables rules matching $pattern are left" >&2
    fi
    return 0
}
