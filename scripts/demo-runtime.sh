#!/usr/bin/env bash
# Run one busybox container with pea and show, from inside and from the host,
# that it lives in its own namespaces. Needs root. Uses target/release/pea
# (built when missing) or $PEA. Leaves nothing behind: the container is
# force-deleted and the temp dir removed on any exit.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

require_root "scripts/demo.sh"
pea="$(pea_binary)"
tmp="$(mktemp -d /tmp/pea-demo.XXXXXX)"
bundle="$tmp/bundle"
state="$tmp/state"
id="pea-demo-$$"
out="$tmp/container.out"

started=false
cleanup() {
    local rc=$?
    if $started && [[ -e "$state/$id" ]]; then
        "$pea" --root "$state" delete --force "$id" >/dev/null 2>&1 ||
            echo "warning: could not delete container $id (state in $state)" >&2
    fi
    safe_rmdir "$tmp" || rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2016 # $$ is expanded by the container's shell
script='echo "PID inside: $$"; hostname; ls -l /proc/self/ns; sleep 60'
bash "$REPO_ROOT/scripts/make-bundle.sh" --hostname pea-demo "$bundle" -- sh -c "$script"

echo "pea demo: a busybox container in its own namespaces"
echo "  pea     $pea ($("$pea" --version))"
echo "  bundle  $bundle (busybox rootfs + config.json from 'pea spec')"
echo "  state   $state (--root; pea's default is /run/pea)"
echo
echo "\$ pea run --detach --bundle \$bundle $id     # runs: sh -c '$script'"
mkdir -p "$state"
started=true
"$pea" --root "$state" run --detach --bundle "$bundle" "$id" >"$out" 2>&1 </dev/null
# The container writes to $out; wait (bounded) until `ls` got to the last namespace.
for _ in $(seq 100); do
    grep -q ' uts -> ' "$out" && break
    sleep 0.05
done
echo "inside the container (its stdout):"
sed 's/^/  | /' "$out"
echo

state_json="$("$pea" --root "$state" state "$id")"
read -r status pid < <(python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["status"], s["pid"])' <<<"$state_json")
echo "from the host:"
echo "  pea state $id: status=$status pid=$pid  (the container's PID 1 is host PID $pid)"
echo "  hostname: host=$(hostname)  container=$(sed -n 2p "$out")"
echo
printf '  %-10s %-14s %-14s %s\n' namespace "host" "container" ""
inode() { local l; l="$(readlink "$1")" && l="${l#*[}" && printf '%s' "${l%]}"; }
for ns in cgroup ipc mnt net pid time user uts; do
    [[ -e "/proc/self/ns/$ns" ]] || continue
    h="$(inode "/proc/$$/ns/$ns")"
    c="$(inode "/proc/$pid/ns/$ns")"
    if [[ "$h" == "$c" ]]; then mark="shared with host"; else mark="<- own namespace"; fi
    printf '  %-10s %-14s %-14s %s\n' "$ns" "$h" "$c" "$mark"
done
echo

echo "\$ pea delete --force $id"
"$pea" --root "$state" delete --force "$id"
if "$pea" --root "$state" state "$id" >/dev/null 2>&1; then
    die "container $id still exists after delete"
fi
echo "container deleted; removing $tmp"
