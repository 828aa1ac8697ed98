#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): test prerequisites (installed
# when missing), rustfmt, clippy, then every test of the workspace. Run as root
# (the integration tests create real containers). Exits non-zero on any failure.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

require_root "scripts/test.sh"
bash "$REPO_ROOT/scripts/setup.sh" --deps-only </dev/null
ensure_cargo
cd "$REPO_ROOT"

# Every step runs even when an earlier one failed, so one run reports everything;
# the exit status is non-zero when any step failed.
failed=()

say "cargo fmt --all -- --check"
cargo fmt --all -- --check || failed+=("cargo fmt --check (run: cargo fmt --all)")

say "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings </dev/null || failed+=("cargo clippy")

# Bounded, so a hung container cannot eat CI's whole budget; --no-fail-fast runs
# every test binary even after one fails. When all passed, the test runner's
# summary is the last thing printed.
say "cargo test --workspace --all-targets"
timeout --kill-after=30s 25m cargo test --workspace --all-targets --no-fail-fast </dev/null ||
    failed+=("cargo test")

if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
