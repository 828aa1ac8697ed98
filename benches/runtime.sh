#!/usr/bin/env bash
# Container lifecycle latency: pea vs runc (and crun when it can run on this host),
# side by side in one hyperfine run per scenario, on one busybox bundle whose
# process is /bin/true:
#   (a) create && start && delete --force
#   (b) run            (create + start + wait + delete in one call)
# Each runtime gets its own --root; every iteration uses a fresh container id.
# Prints each runtime's median and the ratio pea/runc (target: <= 0.5).
#
#   sudo bash benches/runtime.sh            # RUNS=30 WARMUP=5 by default
#   RUNS=100 WARMUP=10 sudo -E bash benches/runtime.sh
#   BENCH_OUT=/some/dir ...                 # also keep hyperfine's JSON there
#
# Uses $PEA, else target/release/pea (built with cargo build --release when
# missing). Needs root, hyperfine, runc, python3 (sudo bash scripts/setup.sh
# --deps-only installs them). Removes everything it creates.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

runs="${RUNS:-30}"
warmup="${WARMUP:-5}"
target_ratio=0.5

require_root "benches/runtime.sh"
for tool in hyperfine runc python3; do
    command -v "$tool" >/dev/null || die "$tool missing: run sudo bash scripts/setup.sh --deps-only"
done
pea="$(pea_binary)"
runc="$(command -v runc)"
crun="$(command -v crun || true)"

tmp="$(mktemp -d /tmp/pea-bench.XXXXXX)"
bundle="$tmp/bundle"
# Container ids start with this prefix (then the runtime and the pid of hyperfine's
# per-iteration shell, unique while the iteration runs), so leftovers can be found.
prefix="pbench$$"

# name → binary of the runtimes taking part (pea and runc always; crun if it works)
declare -A bin=([pea]="$pea" [runc]="$runc")
names=(pea runc)

cleanup() {
    local rc=$? name id
    for name in "${!bin[@]}"; do
        [[ -d "$tmp/root-$name" ]] || continue
        for id in $("${bin[$name]}" --root "$tmp/root-$name" list -q 2>/dev/null); do
            echo "cleanup: deleting leftover $name container $id" >&2
            "${bin[$name]}" --root "$tmp/root-$name" delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    # Cgroups left by a runtime that failed half-way (empty ones only; rmdir is safe).
    find /sys/fs/cgroup -maxdepth 5 -depth -type d -name "$prefix*" -exec rmdir {} + 2>/dev/null || true
    safe_rmdir "$tmp" || rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$REPO_ROOT/scripts/make-bundle.sh" --hostname bench --oci-version 1.0.2-dev "$bundle" -- /bin/true
for name in pea runc; do mkdir -p "$tmp/root-$name"; done

# One plain run each, so a broken runtime fails here and not inside hyperfine.
# crun 1.8 refuses hybrid cgroup v1/v2 hosts; then it is left out, with its reason.
for name in pea runc crun; do
    [[ $name != crun || -n "$crun" ]] || { echo "crun: not installed, skipped"; continue; }
    b="${bin[$name]:-$crun}"
    mkdir -p "$tmp/root-$name"
    if err="$("$b" --root "$tmp/root-$name" run --bundle "$bundle" "${prefix}-probe" 2>&1 </dev/null)"; then
        if [[ $name == crun ]]; then bin[crun]="$crun"; names+=(crun); fi
    else
        "$b" --root "$tmp/root-$name" delete --force "${prefix}-probe" >/dev/null 2>&1 || true
        [[ $name == crun ]] || die "$name cannot run the bench bundle: $err"
        echo "crun: cannot run on this host, skipped ($(tail -n1 <<<"$err"))"
        rmdir "$tmp/root-crun" 2>/dev/null || true
    fi
done

printf 'runtimes:'
for n in "${names[@]}"; do printf ' %s=%s' "$n" "${bin[$n]}"; done
echo
echo "bundle: busybox rootfs, terminal=false, args=[/bin/true]; $runs runs + $warmup warmup per command"
echo "host: $(nproc) cpus, load average $(cut -d' ' -f1-3 /proc/loadavg) (figures are noisy while the host is busy)"

# bench SCENARIO TEMPLATE: in TEMPLATE, RT becomes "<runtime> --root <its root>",
# BUNDLE the bundle dir and ID a fresh container id.
bench() {
    local scenario="$1" template="$2" args=() n cmd
    for n in "${names[@]}"; do
        cmd="${template//RT/${bin[$n]} --root $tmp/root-$n}"
        cmd="${cmd//BUNDLE/$bundle}"
        cmd="${cmd//ID/${prefix}-$n-\$\$}"
        args+=(--command-name "$n" "$cmd")
    done
    echo
    echo "### $scenario, e.g. (\$\$ = hyperfine's per-run shell, so a fresh id each run):"
    echo "    $cmd"
    hyperfine --style basic --warmup "$warmup" --runs "$runs" \
        --export-json "$tmp/$scenario.json" "${args[@]}" </dev/null
    if [[ -n "${BENCH_OUT:-}" ]]; then
        mkdir -p "$BENCH_OUT" && cp "$tmp/$scenario.json" "$BENCH_OUT/"
    fi
}

bench create-start-delete 'RT create --bundle BUNDLE ID && RT start ID && RT delete --force ID'
bench run 'RT run --bundle BUNDLE ID'

echo
python3 - "$target_ratio" "$tmp/create-start-delete.json" "$tmp/run.json" "${names[@]}" <<'PY'
import json, sys
target = float(sys.argv[1])
files, names = sys.argv[2:4], sys.argv[4:]
head = f"{'scenario':<22}" + "".join(f"{n + ' median':>14}" for n in names) + f"{'pea/runc':>10}  target <= {target}"
print(head)
print("-" * len(head))
for path in files:
    with open(path) as f:
        res = {r["command"]: r for r in json.load(f)["results"]}
    med = {n: res[n]["median"] * 1000 for n in names}
    ratio = med["pea"] / med["runc"]
    verdict = "met" if ratio <= target else "NOT met"
    scenario = path.rsplit("/", 1)[-1].removesuffix(".json")
    print(f"{scenario:<22}" + "".join(f"{med[n]:>11.2f} ms" for n in names) + f"{ratio:>10.2f}  {verdict}")
PY
