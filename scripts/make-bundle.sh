#!/usr/bin/env bash
# Build an OCI bundle with a busybox userland:
#
#   scripts/make-bundle.sh [--hostname NAME] [--oci-version V] DIR [--] [ARG...]
#
# DIR/rootfs gets /bin/busybox (from busybox-static) plus a symlink per applet,
# /etc/passwd and /etc/group (root, nobody), and empty /proc /sys /dev /tmp;
# DIR/config.json is `pea spec` with terminal false, the given hostname
# (default "pea"), process args ARG... (default: sh) and, with --oci-version,
# that ociVersion (e.g. 1.0.2-dev, which older runtimes such as crun 1.8 accept).
# The pea used is $PEA, else target/release/pea (built when missing).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0" >&2; exit 2; }

hostname=pea
oci_version=
while [[ $# -gt 0 ]]; do
    case "$1" in
        --hostname) [[ $# -ge 2 ]] || usage; hostname="$2"; shift 2 ;;
        --oci-version) [[ $# -ge 2 ]] || usage; oci_version="$2"; shift 2 ;;
        -h|--help) usage ;;
        *) break ;;
    esac
done
[[ $# -ge 1 ]] || usage
dir="$1"
shift
[[ "${1:-}" == -- ]] && shift
[[ $# -gt 0 ]] || set -- sh

busybox=/bin/busybox
[[ -x "$busybox" ]] || die "$busybox missing: install busybox-static (sudo bash scripts/setup.sh --deps-only)"
pea="$(pea_binary)"

[[ ! -e "$dir/rootfs" ]] || die "$dir/rootfs already exists"
rootfs="$dir/rootfs"
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root}
chmod 1777 "$rootfs/tmp"
chmod 700 "$rootfs/root"
chmod 755 "$dir"
cp "$busybox" "$rootfs/bin/busybox"
# One symlink per applet, at the applet's usual place; skip busybox itself (a link
# named bin/busybox would replace the binary with a loop) and anything present.
while read -r applet; do
    [[ -n "$applet" && "${applet##*/}" != busybox ]] || continue
    link="$rootfs/$applet"
    [[ -e "$link" || -L "$link" ]] && continue
    mkdir -p "$(dirname "$link")"
    ln -s /bin/busybox "$link"
done < <("$busybox" --list-full)
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
    >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'tty:x:5:' 'nogroup:x:65534:' >"$rootfs/etc/group"

rm -f "$dir/config.json"
"$pea" spec --bundle "$dir"
python3 - "$dir/config.json" "$hostname" "$oci_version" "$@" <<'PY'
import json, sys
path, hostname, oci_version, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with open(path) as f:
    config = json.load(f)
config["process"]["terminal"] = False
config["process"]["args"] = args
config["hostname"] = hostname
if oci_version:
    config["ociVersion"] = oci_version
with open(path, "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
PY
