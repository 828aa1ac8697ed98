#!/usr/bin/env bash
# Pods: `peapod apply` vs `podman kube play` (runc as its OCI runtime) of the same
# Pod manifests, side by side in one hyperfine run per scenario, on the same
# single-layer busybox image (built by `peapod image build-from-host`, exported as
# an oci-archive and loaded into Podman):
#   (a) one two-container pod (the Pod of examples/two-containers-job.yaml):
#       apply -> both containers running
#   (b) PODS (20) such pods in one multi-document manifest: apply -> all running
#   (c) the memory of MEM_PODS (100) idle two-container pods: the engine's own
#       processes per pod (peapod: its supervisor, which watches the containers
#       itself, + peapod-pause; Podman: one conmon per container and for the infra
#       container + the infra's catatonit), VmRSS and PSS
# Prints the medians, the per-pod memory and the ratios peapod/Podman against
# the targets (time: <= 0.2, memory: <= 0.5).
#
#   sudo bash benches/pods.sh         # RUNS=10 WARMUP=2 PODS=20 PODS_RUNS=5 MEM_PODS=100
#   BENCH_OUT=/some/dir sudo -E bash benches/pods.sh   # also keep hyperfine's JSON
#
# Podman runs with runc: crun 1.8 refuses hybrid cgroup v1/v2 hosts (the script
# probes it once and prints why). PODMAN_RUNTIME=crun picks crun anyway.
# Uses $PEAPOD, else $CARGO_TARGET_DIR (or target)/release/peapod, built when
# missing. Needs root, hyperfine, podman, conmon, catatonit, runc, python3, ip,
# unshare. Everything is private (peapod root, run root and network dir with
# its default network on bridge pbpp<pid>; Podman's storage, run root, tmp dir,
# containers.conf and network on bridge pbpm<pid>) and removed at exit.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs="${RUNS:-10}"
warmup="${WARMUP:-2}"
pods="${PODS:-20}"
pods_runs="${PODS_RUNS:-5}"
mem_pods="${MEM_PODS:-100}"
settle="${SETTLE:-5}"
time_target=0.2
mem_target=0.5

require_root "benches/pods.sh"
for tool in hyperfine podman conmon catatonit runc python3 ip unshare; do
    command -v "$tool" >/dev/null || die "$tool missing: run sudo bash scripts/setup.sh --deps-only"
done
peapod="$(bench_peapod_binary)"
podman_runtime="$(command -v "${PODMAN_RUNTIME:-runc}")" || die "${PODMAN_RUNTIME:-runc} not found"

tmp="$(mktemp -d /tmp/peapod-pods-bench.XXXXXX)"
prefix="pbench$$"
pp_net="$prefix-pp" pm_net="$prefix-pm"
pp_bridge="pbpp$$" pm_bridge="pbpm$$"
# Podman's CNI code creates /run/netns (a shared bind mount of itself) when
# missing; its cgroupfs manager puts pods under /libpod_parent.
netns_existed=false
[[ -e /run/netns ]] && netns_existed=true
libpod_parents=()
for d in /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/libpod_parent; do
    [[ -d $d ]] && libpod_parents+=("$d")
done

# peapod: root, run root and network configs of its own. Its pods join its
# default network `peapod`, made here (before peapod would write its own, on
# the host-wide bridge peapod0) by `peapod network create` on a private bridge
# and subnet, renamed `peapod`, with a private lease dir.
export PEAPOD_ROOT="$tmp/peapod/root" PEAPOD_RUN_ROOT="$tmp/peapod/run"
export PEAPOD_CNI_CONFIG_DIR="$tmp/peapod/cni" PEAPOD_STORAGE_DRIVER=overlay
bench_podman_setup "$tmp/podman" "$podman_runtime"

# Every pod of each engine, deleted at once (SIGKILL: no grace period).
cat >"$tmp/reset-peapod.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
names="\$("$peapod" get pods -o name 2>/dev/null | sed 's|^pod/||')"
# shellcheck disable=SC2086
[[ -z \$names ]] || "$peapod" delete pod \$names --grace-period 0 >/dev/null
left="\$("$peapod" get pods -o name 2>/dev/null)"
[[ -z \$left ]] || { echo "peapod pods left: \$left" >&2; exit 1; }
EOF
cat >"$tmp/reset-podman.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
$pm pod rm --all --force --time 0 >/dev/null
left="\$($pm pod ps -q)"
[[ -z \$left ]] || { echo "podman pods left: \$left" >&2; exit 1; }
EOF

# hyperfine 1.15 takes one --cleanup for all commands.
printf '#!/usr/bin/env bash\nbash %s && bash %s\n' "$tmp/reset-peapod.sh" "$tmp/reset-podman.sh" >"$tmp/reset-both.sh"

cleanup() {
    local rc=$? d m
    set +e
    trap - INT TERM
    [[ -d $PEAPOD_ROOT/pods ]] && bash "$tmp/reset-peapod.sh" 2>/dev/null
    if [[ -d $pmdir/root ]]; then
        pm pod rm --all --force --time 0 >/dev/null 2>&1
        pm rm --all --force --time 0 >/dev/null 2>&1
    fi
    # conmon runs `podman container cleanup` when a container ends: let it finish.
    bench_end_leftovers "$tmp"
    [[ -d $pmdir/net ]] && pm network rm --force "$pm_net" >/dev/null 2>&1
    # peapod's default network back to its created name, so that `network rm`
    # removes its host rules (NAT, FORWARD) and its bridge.
    if [[ -f $PEAPOD_CNI_CONFIG_DIR/peapod.conflist ]] && grep -q "\"$pp_bridge\"" "$PEAPOD_CNI_CONFIG_DIR/peapod.conflist"; then
        bench_rename_network "$PEAPOD_CNI_CONFIG_DIR" peapod "$pp_net"
    fi
    [[ -f $PEAPOD_CNI_CONFIG_DIR/$pp_net.conflist ]] && "$peapod" network rm "$pp_net" >/dev/null
    for d in "$pp_bridge" "$pm_bridge"; do
        ip link show "$d" >/dev/null 2>&1 && ip link del "$d"
    done
    # Podman's host-local leases and libcni's result cache live under /var/lib/cni
    # (peapod's leases are in the temp dir).
    rm -rf "/var/lib/cni/networks/$pm_net"
    rm -f /var/lib/cni/results/"$pm_net"-* 2>/dev/null
    for d in /sys/fs/cgroup/*/libpod_parent /sys/fs/cgroup/libpod_parent; do
        [[ -d $d && " ${libpod_parents[*]} " != *" $d "* ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    bench_end_host "$tmp" "$netns_existed" "$prefix|$pp_bridge|$pm_bridge"
    safe_rmdir "$tmp" || rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mapfile -t subnets < <(bench_free_subnets 2)
[[ ${#subnets[@]} -eq 2 ]] || die "no two free 10.X.0.0/24 subnets"
pp_subnet="${subnets[0]}" pm_subnet="${subnets[1]}"

bench_busybox_image "$tmp"

say "bridge networks: peapod's default network peapod ($pp_bridge, $pp_subnet), podman $pm_net ($pm_bridge, $pm_subnet)"
mkdir -p "$tmp/peapod/leases"
"$peapod" network create --subnet "$pp_subnet" --bridge "$pp_bridge" "$pp_net" >/dev/null
bench_rename_network "$PEAPOD_CNI_CONFIG_DIR" "$pp_net" peapod "$tmp/peapod/leases"
pm network create --subnet "$pm_subnet" "$pm_net" >/dev/null
bench_podman_bridge "$pm_net" "$pm_bridge"

# The Pod of examples/two-containers-job.yaml (its Job's template).
pod_doc() {
    cat <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
spec:
  containers:
    - name: first
      image: busybox
      command: ["sh", "-c", "echo first container && sleep 3600"]
    - name: second
      image: busybox
      command: ["sh", "-c", "echo second container && sleep 3600"]
  restartPolicy: OnFailure
EOF
}
# pods_file FILE N: N pods two-containers-1..N in one multi-document manifest.
pods_file() {
    local i
    for i in $(seq "$2"); do
        [[ $i -eq 1 ]] || echo ---
        pod_doc "two-containers-$i"
    done >"$1"
}
pod_doc two-containers >"$tmp/pod.yaml"
pods_file "$tmp/pods.yaml" "$pods"
pods_file "$tmp/mem-pods.yaml" "$mem_pods"

pp_apply="$peapod apply -f"
pm_play="$pm kube play --network $pm_net"

# Both engines run the pod for real: every container running, on the same
# image, the pod on its bridge. Podman also builds its infra (pause) image here.
check_peapod() {
    local out
    out="$($pp_apply "$1" 2>&1)" || die "peapod apply -f $1 failed: $out"
    python3 - "$PEAPOD_ROOT/pods" "$2" "$pp_id" "$pp_subnet" <<'PY' || die "peapod: pods not all running"
import glob, ipaddress, json, sys
root, want, image, subnet = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
recs = [json.load(open(p)) for p in glob.glob(f"{root}/*/pod.json")]
bad = [(r["name"], c["name"], c["state"]) for r in recs for c in r["containers"] if "running" not in c["state"]]
ips = [r.get("ip") for r in recs]
if len(recs) != want or bad or not all(i and ipaddress.ip_address(i) in ipaddress.ip_network(subnet) for i in ips):
    sys.exit(f"peapod: {len(recs)} pods of {want}, not running: {bad[:3]}, ips {ips[:3]}")
PY
}
check_podman() {
    local out
    out="$($pm_play "$1" 2>&1)" || die "podman kube play $1 failed: $out"
    # shellcheck disable=SC2046
    pm inspect --format '{{.Name}} {{.State.Status}} {{.Image}} {{.IsInfra}}' \
        $(pm ps -aq) >"$tmp/podman-check.txt"
    python3 - "$tmp/podman-check.txt" "$2" "$pm_id" <<'PY' || die "podman: pods not all running"
import sys
path, want, image = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [l.split() for l in open(path) if l.strip()]
apps = [r for r in rows if r[3] == "false"]
infra = [r for r in rows if r[3] == "true"]
bad = [r[:3] for r in rows if r[1] != "running" or (r[3] == "false" and r[2].removeprefix("sha256:") != image.removeprefix("sha256:"))]
if len(apps) != 2 * want or len(infra) != want or bad:
    sys.exit(f"podman: {len(apps)} app and {len(infra)} infra containers for {want} pods, wrong: {bad[:3]}")
PY
}
say "checking both engines run the two-container pod"
check_peapod "$tmp/pod.yaml" 1
check_podman "$tmp/pod.yaml" 1
bash "$tmp/reset-peapod.sh"
bash "$tmp/reset-podman.sh"

crun_note="$(bench_crun_note "$podman_runtime")"

echo
echo "peapod: $peapod ($("$peapod" --version))"
echo "podman: $(podman --version), OCI runtime $podman_runtime ($("$podman_runtime" --version | head -n1)), conmon $(conmon --version | head -n1 | awk '{print $3}'), CNI network backend; $crun_note"
echo "image: busybox from /bin/busybox, ${pp_id:7:12} in both; pods: the Pod of examples/two-containers-job.yaml (two busybox sh -c '... && sleep 3600')"
bench_host_note "$tmp"

out_dir="$tmp/out"
mkdir -p "$out_dir"
keep() { [[ -z "${BENCH_OUT:-}" ]] || { mkdir -p "$BENCH_OUT" && cp "$out_dir/$1" "$BENCH_OUT/"; }; }

# Each timed run starts with no pod (--prepare deletes every pod of the engine,
# outside the timing) and ends when apply / kube play returns: peapod's apply
# waits for each pod supervisor's "started" (its app containers run), kube
# play for its containers' start.
bench_pods() {
    local scenario="$1" file="$2" n_runs="$3" n_warmup="$4"
    echo
    echo "### $scenario"
    hyperfine --style basic -N --warmup "$n_warmup" --runs "$n_runs" --export-json "$out_dir/$scenario.json" \
        --prepare "bash $tmp/reset-peapod.sh" -n peapod "$pp_apply $file" \
        --prepare "bash $tmp/reset-podman.sh" -n podman "$pm_play $file" \
        --cleanup "bash $tmp/reset-both.sh" </dev/null
    keep "$scenario.json"
}
bench_pods pod "$tmp/pod.yaml" "$runs" "$warmup"
bench_pods "pods-$pods" "$tmp/pods.yaml" "$pods_runs" 0
# Both ended with all their pods deleted (--cleanup); check they did start them all.
check_peapod "$tmp/pods.yaml" "$pods"
check_podman "$tmp/pods.yaml" "$pods"
bash "$tmp/reset-peapod.sh"
bash "$tmp/reset-podman.sh"

# (c) memory: MEM_PODS idle pods of one engine at a time, measured SETTLE
# seconds after the apply: "engine role pid rss_kb pss_kb anon_kb" lines (anon:
# RssAnon, the resident pages no file backs).
mem="$tmp/mem.txt"
: >"$mem"
# measure ENGINE: reads "role pid" lines, writes the line of each to $mem.
measure() {
    python3 -c '
import sys
engine = sys.argv[1]
for line in sys.stdin:
    role, pid = line.split()
    def field(path, key):
        for l in open(path):
            if l.startswith(key + ":"):
                return int(l.split()[1])
        return 0
    try:
        rss = field(f"/proc/{pid}/status", "VmRSS")
        anon = field(f"/proc/{pid}/status", "RssAnon")
        pss = field(f"/proc/{pid}/smaps_rollup", "Pss")
    except OSError as e:
        sys.exit(f"{engine} {role} {pid}: {e}")
    print(engine, role, pid, rss, pss, anon)
' "$1" >>"$mem"
}
echo
echo "### memory: $mem_pods idle two-container pods per engine, one engine at a time"
say "peapod: applying $mem_pods pods"
t0=$(date +%s%N)
check_peapod "$tmp/mem-pods.yaml" "$mem_pods"
t1=$(date +%s%N)
sleep "$settle"
python3 - "$PEAPOD_ROOT/pods" "$(readlink -f "$peapod")" <<'PY' | measure peapod
import glob, json, os, sys
root, exe = sys.argv[1], sys.argv[2]
for p in glob.glob(f"{root}/*/pod.json"):
    r = json.load(open(p))
    sup, infra = r["supervisor"]["pid"], r["infra"]["pid"]
    print("supervisor", sup)
    print("pause", infra)
    kids = []
    for t in glob.glob(f"/proc/{sup}/task/*/children"):
        kids += open(t).read().split()
    # The supervisor's children: the infra process, the containers' own
    # processes (not the engine's), and any other process of peapod's.
    for k in kids:
        try:
            mine = os.readlink(f"/proc/{k}/exe") == exe
        except OSError:
            mine = False
        if int(k) != infra and mine:
            print("helper", k)
PY
bash "$tmp/reset-peapod.sh"
say "podman: kube play of $mem_pods pods"
t2=$(date +%s%N)
check_podman "$tmp/mem-pods.yaml" "$mem_pods"
t3=$(date +%s%N)
sleep "$settle"
# shellcheck disable=SC2046
pm inspect --format '{{.IsInfra}} {{.State.ConmonPid}} {{.State.Pid}}' $(pm ps -aq) |
    awk '{print "conmon", $2} $1 == "true" {print "catatonit", $3}' | measure podman
bash "$tmp/reset-podman.sh"
echo "one apply of all $mem_pods pods (one manifest, one run, not a median): peapod $(((t1 - t0) / 1000000)) ms, podman kube play $(((t3 - t2) / 1000000)) ms"
keep_mem() { [[ -z "${BENCH_OUT:-}" ]] || { mkdir -p "$BENCH_OUT" && cp "$mem" "$BENCH_OUT/"; }; }
keep_mem

echo
python3 - "$out_dir" "$pods" "$mem_pods" "$mem" "$time_target" "$mem_target" <<'PY'
import collections, json, sys
out, pods, mem_pods, mem = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
time_target, mem_target = float(sys.argv[5]), float(sys.argv[6])
def med(name):
    with open(f"{out}/{name}.json") as f:
        res = {r["command"]: r for r in json.load(f)["results"]}
    return res["peapod"]["median"], res["podman"]["median"]
procs = collections.defaultdict(list)   # (engine, role) -> [(rss, pss, anon)]
for l in open(mem):
    engine, role, _pid, *kb = l.split()
    procs[engine, role].append(tuple(int(k) for k in kb))
def per_pod(engine, i):
    return sum(v[i] for (e, _), vs in procs.items() if e == engine for v in vs) / mem_pods
def fmt_t(s):
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"
rows = [
    ("apply 1 pod -> running", *med("pod"), fmt_t, time_target),
    (f"apply {pods} pods -> running", *med(f"pods-{pods}"), fmt_t, time_target),
    ("memory per idle pod, RSS", per_pod("peapod", 0), per_pod("podman", 0), lambda k: f"{k / 1024:.2f} MiB", mem_target),
    ("memory per idle pod, PSS", per_pod("peapod", 1), per_pod("podman", 1), lambda k: f"{k / 1024:.2f} MiB", mem_target),
]
head = f"{'scenario':<28}{'peapod':>12}{'podman':>12}{'ratio':>8}  target"
print(head)
print("-" * (len(head) + 14))
for name, p, q, fmt, target in rows:
    verdict = "met" if p / q <= target else "NOT met"
    print(f"{name:<28}{fmt(p):>12}{fmt(q):>12}{p / q:>8.3f}  <= {target}: {verdict}")
print(f"\n(times: medians; memory: the engine's own processes of {mem_pods} idle pods / {mem_pods}, "
      "RSS counts shared pages in every process, PSS divides them among their sharers)")
print(f"\nwhere the memory goes ({mem_pods} pods; per process: mean; per pod: sum / {mem_pods}):")
print(f"{'engine':<8}{'process':<12}{'count':>6}{'RSS/proc':>11}{'anon/proc':>11}{'PSS/proc':>11}{'RSS/pod':>11}{'PSS/pod':>11}")
for (engine, role), vs in sorted(procs.items()):
    n = len(vs)
    rss, pss, anon = (sum(v[i] for v in vs) for i in range(3))
    print(f"{engine:<8}{role:<12}{n:>6}{rss / n:>8.0f} kB{anon / n:>8.0f} kB{pss / n:>8.0f} kB"
          f"{rss / mem_pods:>8.0f} kB{pss / mem_pods:>8.0f} kB")
PY
