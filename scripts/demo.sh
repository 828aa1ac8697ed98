#!/usr/bin/env bash
# The main demo: a two-container pod from examples/two-containers-job.yaml,
# with its namespaces shown (ipc and net shared with the pod's infra
# process; mnt, uts and pid the containers' own); then
# examples/shared-pid-job.yaml, where a container's `ps` shows the infra
# process as PID 1 and the other container's sleep.
#
# Needs root. Uses target/release/peapod (built when missing) or $PEAPOD.
# Runs in a private engine root under /tmp and removes everything it made
# on any exit.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

require_root "scripts/demo.sh"
peapod_bin="$(peapod_binary)"
tmp="$(mktemp -d /tmp/peapod-demo.XXXXXX)"
export PEAPOD_ROOT="$tmp/root" PEAPOD_RUN_ROOT="$tmp/run"
examples="$REPO_ROOT/examples"

peapod() { "$peapod_bin" "$@"; }
show() {
    printf '\n$ peapod %s\n' "$*"
    peapod "$@"
}

cleanup() {
    local rc=$?
    peapod delete job two-containers --grace-period 1 >/dev/null 2>&1 || true
    peapod delete job shared-pid --grace-period 1 >/dev/null 2>&1 || true
    peapod system prune -f >/dev/null 2>&1 || true
    # The directory of network namespace files is a mount point of its own.
    umount "$tmp/run/netns" 2>/dev/null || true
    safe_rmdir "$tmp" || rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pod_of() { peapod get pods -l "job-name=$1" -o name | head -n1 | cut -d/ -f2; }

# Waits (bounded) until a container's log has a line matching $3.
wait_log() {
    local _
    for _ in $(seq 100); do
        peapod logs "$1" -c "$2" 2>/dev/null | grep -q "$3" && return 0
        sleep 0.05
    done
    die "container $2 of pod $1 never printed $3"
}

echo "peapod demo: pods from Kubernetes manifests ($peapod_bin)"
echo "engine state in $tmp (PEAPOD_ROOT, PEAPOD_RUN_ROOT)"

show apply -f "$examples/two-containers-job.yaml"
pod="$(pod_of two-containers)"
wait_log "$pod" second "second container"
show get pods -o wide
show logs "$pod" -c first
show logs "$pod" -c second
echo
echo "# one infra (pause) process holds the pod's network and IPC namespaces;"
echo "# each container joins them and keeps its own mnt, uts and pid namespaces:"
show pod ns "$pod"

show apply -f "$examples/shared-pid-job.yaml"
spod="$(pod_of shared-pid)"
wait_log "$spod" watcher "sleep 3600"
echo
echo "# shareProcessNamespace: the infra process is PID 1 of the pod, and the"
echo "# watcher container's ps sees the sleeper container's sleep:"
show logs "$spod" -c watcher
show pod ns "$spod"

show delete job two-containers --grace-period 1
show delete job shared-pid --grace-period 1
show get pods
