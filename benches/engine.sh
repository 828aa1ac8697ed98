#!/usr/bin/env bash
# Engine latency: peapod vs Podman (runc as its OCI runtime), side by side in one
# hyperfine run per scenario, on the same single-layer busybox image (built by
# `peapod image build-from-host` from the host's /bin/busybox, exported as an
# oci-archive and loaded into Podman):
#   (a) run --rm --network none busybox true
#   (b) run --rm --network <bridge network> busybox true  (one bridge network per engine)
#   (c) BULK (50) containers `run -d ... sleep 600`, then one `rm -f` of them all
# Prints each engine's median and the ratio peapod/podman (target for run --rm:
# <= 0.2), then the per-container memory of an idle detached container: peapod's
# supervisor + monitor vs Podman's conmon (VmRSS).
#
#   sudo bash benches/engine.sh                  # RUNS=20 WARMUP=3 BULK=50 BULK_RUNS=3
#   RUNS=50 WARMUP=5 sudo -E bash benches/engine.sh
#   BENCH_OUT=/some/dir sudo -E bash benches/engine.sh   # also keep hyperfine's JSON
#
# Podman runs with runc: crun 1.8 refuses hybrid cgroup v1/v2 hosts (the script
# probes it once and prints why). PODMAN_RUNTIME=crun picks crun anyway.
# Uses $PEAPOD, else $CARGO_TARGET_DIR (or target)/release/peapod, built when
# missing. Needs root, hyperfine, podman, conmon, runc, python3, ip, unshare.
# Everything is private (peapod root, run root and network dir; Podman's storage,
# run root, tmp dir, containers.conf, network dir; cgroup parents; bridges named
# pbpp<pid>/pbpm<pid>) and removed at exit.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

runs="${RUNS:-20}"
warmup="${WARMUP:-3}"
bulk="${BULK:-50}"
bulk_runs="${BULK_RUNS:-3}"
target_ratio=0.2

require_root "benches/engine.sh"
for tool in hyperfine podman conmon runc python3 ip unshare; do
    command -v "$tool" >/dev/null || die "$tool missing: run sudo bash scripts/setup.sh --deps-only"
done

peapod="$(bench_peapod_binary)"
podman_runtime="$(command -v "${PODMAN_RUNTIME:-runc}")" || die "${PODMAN_RUNTIME:-runc} not found"

tmp="$(mktemp -d /tmp/peapod-engine-bench.XXXXXX)"
prefix="pbench$$"
pp_net="$prefix-pp" pm_net="$prefix-pm"
pp_bridge="pbpp$$" pm_bridge="pbpm$$"
pp_cg="/$prefix-peapod" pm_cg="/$prefix-podman"
# Podman's CNI code creates /run/netns (a shared bind mount of itself) when missing.
netns_existed=false
[[ -e /run/netns ]] && netns_existed=true

# peapod: root, run root and network configs of its own.
export PEAPOD_ROOT="$tmp/peapod/root" PEAPOD_RUN_ROOT="$tmp/peapod/run"
export PEAPOD_CNI_CONFIG_DIR="$tmp/peapod/cni" PEAPOD_STORAGE_DRIVER=overlay

# Podman: configuration, storage, run root, tmp dir and network dir of its own.
bench_podman_setup "$tmp/podman" "$podman_runtime"

cleanup() {
    local rc=$? d id m
    set +e
    trap - INT TERM
    # peapod has no `ps`: its containers are the directories of its root.
    for d in "$PEAPOD_ROOT"/containers/*/; do
        [[ -d $d ]] || continue
        id="$(basename "$d")"
        "$peapod" rm -f "$id" >/dev/null 2>&1 || echo "cleanup: cannot remove peapod container $id" >&2
    done
    if [[ -d $pmdir/root ]]; then
        pm rm --all --force --time 0 >/dev/null 2>&1
    fi
    # conmon runs `podman container cleanup` when a container ends: let it finish.
    bench_end_leftovers "$tmp"
    [[ -d $pmdir/net ]] && pm network rm --force "$pm_net" >/dev/null 2>&1
    [[ -d $PEAPOD_CNI_CONFIG_DIR ]] && "$peapod" network rm "$pp_net" >/dev/null 2>&1
    for d in "$pp_bridge" "$pm_bridge"; do
        ip link show "$d" >/dev/null 2>&1 && ip link del "$d"
    done
    # host-local leases and libcni's result cache live under /var/lib/cni.
    rm -rf "/var/lib/cni/networks/$pp_net" "/var/lib/cni/networks/$pm_net"
    rm -f /var/lib/cni/results/"$prefix"-* 2>/dev/null
    # Cgroup parents (empty by now; rmdir only removes empty cgroups).
    for d in /sys/fs/cgroup/*/"${pp_cg#/}" /sys/fs/cgroup/*/"${pm_cg#/}" \
        /sys/fs/cgroup/"${pp_cg#/}" /sys/fs/cgroup/"${pm_cg#/}"; do
        [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    bench_end_host "$tmp" "$netns_existed" "$prefix|$pp_bridge|$pm_bridge"
    safe_rmdir "$tmp" || rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two free /24 subnets: none of the host's addresses or routes overlap them.
mapfile -t subnets < <(bench_free_subnets 2)
[[ ${#subnets[@]} -eq 2 ]] || die "no two free 10.X.0.0/24 subnets"
pp_subnet="${subnets[0]}" pm_subnet="${subnets[1]}"

bench_busybox_image "$tmp"

say "bridge networks: peapod $pp_net ($pp_bridge, $pp_subnet), podman $pm_net ($pm_bridge, $pm_subnet)"
"$peapod" network create --subnet "$pp_subnet" --bridge "$pp_bridge" "$pp_net" >/dev/null
pm network create --subnet "$pm_subnet" "$pm_net" >/dev/null
bench_podman_bridge "$pm_net" "$pm_bridge"

# One plain run of each scenario, so a broken engine fails here and not in hyperfine.
pp_base="$peapod run --cgroup-parent $pp_cg"
pm_base="$pm run --cgroup-parent $pm_cg"
pp_run="$pp_base --rm" pm_run="$pm_base --rm"
for net in none "$pp_net"; do
    out="$($pp_run --network "$net" busybox true 2>&1)" || die "peapod run --rm --network $net busybox true failed: $out"
done
for net in none "$pm_net"; do
    out="$($pm_run --network "$net" busybox true 2>&1)" || die "podman run --rm --network $net busybox true failed: $out"
done
# The bridge really works: eth0 has an address of the subnet and the gateway answers.
check_bridge() {
    local engine="$1" subnet="$2" out gw
    shift 2
    gw="${subnet%.0/24}.1"
    out="$("$@" busybox sh -c "ip -4 -o addr show eth0 && ping -c1 -W2 $gw >/dev/null && echo gateway-ok" 2>&1)" ||
        die "$engine: bridge check failed: $out"
    grep -q gateway-ok <<<"$out" || die "$engine: gateway $gw does not answer: $out"
    echo "bridge check: $engine container: $(awk '{print $2, $4}' <<<"$out" | head -n1), ping $gw ok"
}
# shellcheck disable=SC2086
check_bridge peapod "$pp_subnet" $pp_run --network "$pp_net"
# shellcheck disable=SC2086
check_bridge podman "$pm_subnet" $pm_run --network "$pm_net"

# crun is only probed: 1.8 refuses hybrid cgroup hosts.
crun_note="$(bench_crun_note "$podman_runtime" --cgroup-parent "$pm_cg")"

echo
echo "peapod: $peapod ($("$peapod" --version))"
echo "podman: $(podman --version), OCI runtime $podman_runtime ($("$podman_runtime" --version | head -n1)), conmon $(conmon --version | head -n1 | awk '{print $3}'), CNI network backend; $crun_note"
echo "image: busybox from /bin/busybox, ${pp_id:7:12} in both; $runs runs + $warmup warmup per run --rm command"
bench_host_note "$tmp"

out_dir="$tmp/out"
mkdir -p "$out_dir"
keep() { [[ -z "${BENCH_OUT:-}" ]] || { mkdir -p "$BENCH_OUT" && cp "$out_dir/$1" "$BENCH_OUT/"; }; }

bench_run() {
    local scenario="$1" pp_netw="$2" pm_netw="$3"
    echo
    echo "### $scenario"
    hyperfine --style basic -N --warmup "$warmup" --runs "$runs" --export-json "$out_dir/$scenario.json" \
        -n peapod "$pp_run --network $pp_netw busybox true" \
        -n podman "$pm_run --network $pm_netw busybox true" </dev/null
    keep "$scenario.json"
}
bench_run run-rm-none none none
bench_run run-rm-bridge "$pp_net" "$pm_net"

# (c) BULK detached containers, then one rm -f of them all; each phase's time is
# appended to a log (microseconds: start-phase remove-phase).
write_bulk() {
    local file="$1" run="$2" rm="$3"
    cat >"$file" <<EOF
#!/usr/bin/env bash
set -euo pipefail
ids=()
t0=\$(date +%s%N)
for _ in \$(seq $bulk); do ids+=("\$($run -d --network none busybox sleep 600)"); done
t1=\$(date +%s%N)
$rm "\${ids[@]}" >/dev/null
t2=\$(date +%s%N)
echo "\$(( (t1 - t0) / 1000 )) \$(( (t2 - t1) / 1000 ))" >>"\$0.log"
EOF
}
write_bulk "$tmp/bulk-peapod.sh" "$pp_base" "$peapod rm -f"
write_bulk "$tmp/bulk-podman.sh" "$pm_base" "$pm rm -f --time 0"
echo
echo "### bulk: $bulk x \`run -d --network none busybox sleep 600\`, then one \`rm -f\` of them all (podman: rm -f --time 0)"
hyperfine --style basic --runs "$bulk_runs" --export-json "$out_dir/bulk.json" \
    -n peapod "bash $tmp/bulk-peapod.sh" -n podman "bash $tmp/bulk-podman.sh" </dev/null
keep bulk.json

# Per-container memory of one idle detached container.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
pp_ctr="$($pp_base -d --network none busybox sleep 600)"
pm_ctr="$($pm_base -d --network none busybox sleep 600)"
sleep 1
read -r sup mon < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["supervisor"]["pid"], r["monitor"]["pid"])' \
    "$PEAPOD_ROOT/containers/$pp_ctr/record.json")
conmon_pid="$(pm inspect --format '{{.State.ConmonPid}}' "$pm_ctr")"
mem_note="$(printf 'peapod supervisor %s kB + monitor %s kB = %s kB; podman conmon %s kB (VmRSS, shared pages included)' \
    "$(rss_kb "$sup")" "$(rss_kb "$mon")" "$(($(rss_kb "$sup") + $(rss_kb "$mon")))" "$(rss_kb "$conmon_pid")")"
"$peapod" rm -f "$pp_ctr" >/dev/null
pm rm -f --time 0 "$pm_ctr" >/dev/null

echo
python3 - "$target_ratio" "$out_dir" "$bulk" "$tmp/bulk-peapod.sh.log" "$tmp/bulk-podman.sh.log" "$mem_note" <<'PY'
import json, statistics, sys
target, out, bulk = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
pp_log, pm_log, mem = sys.argv[4:7]
def med(name):
    with open(f"{out}/{name}.json") as f:
        res = {r["command"]: r for r in json.load(f)["results"]}
    return res["peapod"]["median"], res["podman"]["median"]
rows = [("run --rm, --network none", *med("run-rm-none"), True),
        ("run --rm, bridge network", *med("run-rm-bridge"), True),
        (f"{bulk} x run -d, then rm -f", *med("bulk"), False)]
head = f"{'scenario':<28}{'peapod median':>15}{'podman median':>15}{'ratio':>8}  target <= {target}"
print(head)
print("-" * len(head))
def fmt(s):
    return f"{s * 1000:10.1f} ms" if s < 1 else f"{s:11.2f} s"
for name, p, q, has_target in rows:
    verdict = ("met" if p / q <= target else "NOT met") if has_target else "(no target)"
    print(f"{name:<28}{fmt(p):>15}{fmt(q):>15}{p / q:>8.2f}  {verdict}")
def phases(path):
    rows = [tuple(int(x) for x in l.split()) for l in open(path) if l.strip()]
    return statistics.median(r[0] for r in rows) / 1e6, statistics.median(r[1] for r in rows) / 1e6
(ps, pr), (qs, qr) = phases(pp_log), phases(pm_log)
print(f"{'  of which: start ' + str(bulk):<28}{fmt(ps):>15}{fmt(qs):>15}{ps / qs:>8.2f}  "
      f"({ps / bulk * 1000:.0f} vs {qs / bulk * 1000:.0f} ms per container)")
print(f"{'  of which: rm -f all':<28}{fmt(pr):>15}{fmt(qr):>15}{pr / qr:>8.2f}")
print(f"\nper-container overhead, one idle detached container: {mem}")
PY
