#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for peapod, build it and run the demo:
#
#   sudo bash scripts/setup.sh               # packages + cargo build --release + demo
#   sudo bash scripts/setup.sh --deps-only   # only the packages (used by scripts/test.sh)
#   sudo bash scripts/setup.sh --no-demo     # packages + build
#
# Idempotent: packages already installed are skipped (no apt-get at all when
# nothing is missing), and cargo only rebuilds what changed. Never reads stdin.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

deps_only=false
demo=true
for arg in "$@"; do
    case "$arg" in
        --deps-only) deps_only=true ;;
        --no-demo) demo=false ;;
        -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

install_packages "${PEA_PACKAGES[@]}"
$deps_only && exit 0

ensure_cargo
cd "$REPO_ROOT"
say "cargo build --release"
cargo build --release </dev/null
say "built $REPO_ROOT/target/release/pea"

if $demo; then
    require_root "the demo"
    say "bash scripts/demo.sh"
    bash scripts/demo.sh </dev/null
fi
