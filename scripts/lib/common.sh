# shellcheck shell=bash
# Helpers shared by scripts/*.sh and benches/runtime.sh. Source it; it sets nothing
# but REPO_ROOT, PEA_PACKAGES and functions.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian packages the project needs: busybox-static is the userland of every test
# and demo container (/bin/busybox); ldd (libc-bin), ps (procps), ip (iproute2) and
# ipcmk (util-linux) are used by the integration tests; runc, crun and hyperfine are
# the benchmark peers and driver; python3 edits config.json and reads hyperfine's JSON;
# libseccomp-dev is what pea-runtime links for linux.seccomp (its libseccomp.so);
# uidmap (newuidmap/newgidmap) maps subordinate id ranges for rootless pea, and the
# rootless tests run pea as a user they add with useradd (passwd) and setpriv;
# containerd (ctr, the runc shim) and podman (conmon; catatonit for a pod's infra
# container; containernetworking-plugins, its CNI network backend) are the clients
# that drive pea in tests/containerd.rs and tests/podman.rs;
# docker-registry (a real registry on loopback), skopeo (fills it from OCI layouts),
# apache2-utils (htpasswd, bcrypt users for registry auth) and umoci (benches/image.sh
# peer) serve the image tests in crates/image/tests and crates/cli/tests/peapod_images.rs;
# containernetworking-plugins (bridge, host-local, portmap) and
# iptables are peapod's container and pod networking; openssl makes the TLS registry
# test's certificates (and the HTTPS probe test's); curl probes published ports;
# python3-grpcio is the real gRPC server that tests/peapod_probes.rs's grpc probe
# checks (run with Debian's /usr/bin/python3).
# shellcheck disable=SC2034 # used by the scripts that source this file
PEA_PACKAGES=(busybox-static runc crun hyperfine iproute2 util-linux libc-bin procps python3 libseccomp-dev uidmap passwd
    containerd podman conmon catatonit containernetworking-plugins
    docker-registry skopeo apache2-utils umoci iptables openssl curl python3-grpcio)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() {
    [[ "$(id -u)" -eq 0 ]] || die "$1 must run as root (containers need it); try: sudo bash $0"
}

# Install the missing ones of the Debian packages "$@": no-op when all are there,
# non-interactive otherwise, and never reads stdin.
install_packages() {
    local pkgs=("$@") missing=() p
    if ! command -v dpkg-query >/dev/null; then
        say "not a Debian system: install these yourself if missing: ${pkgs[*]}"
        return 0
    fi
    for p in "${pkgs[@]}"; do
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]]; then
            missing+=("$p")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "packages: all present (${pkgs[*]})"
        return 0
    fi
    [[ "$(id -u)" -eq 0 ]] || die "missing packages (${missing[*]}); run as root: sudo bash scripts/setup.sh"
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Wait (bounded) for a dpkg lock held by e.g. unattended-upgrades instead of failing.
    apt-get -o DPkg::Lock::Timeout=300 update -qq </dev/null
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# Make cargo reachable even under sudo, whose PATH usually lacks ~/.cargo/bin.
ensure_cargo() {
    command -v cargo >/dev/null && return 0
    local d home
    for home in "${HOME:-}" "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)" /root; do
        d="$home/.cargo/bin"
        if [[ -n "$home" && -x "$d/cargo" ]]; then
            PATH="$d:$PATH"
            export PATH
            return 0
        fi
    done
    die "cargo not found: install the Rust toolchain (https://rustup.rs) and retry"
}

# The pea binary: $PEA if set, else target/release/pea (built when missing).
# The release peapod binary ($PEAPOD overrides), built when missing.
peapod_binary() {
    if [[ -n "${PEAPOD:-}" ]]; then
        [[ -x "$PEAPOD" ]] || die "PEAPOD=$PEAPOD is not an executable"
        printf '%s\n' "$PEAPOD"
        return
    fi
    local bin="$REPO_ROOT/target/release/peapod"
    if [[ ! -x "$bin" ]]; then
        ensure_cargo
        say "building $bin (cargo build --release)"
        (cd "$REPO_ROOT" && cargo build --release >&2)
    fi
    printf '%s\n' "$bin"
}

pea_binary() {
    if [[ -n "${PEA:-}" ]]; then
        [[ -x "$PEA" ]] || die "PEA=$PEA is not an executable"
        printf '%s\n' "$PEA"
        return
    fi
    local bin="$REPO_ROOT/target/release/pea"
    if [[ ! -x "$bin" ]]; then
        ensure_cargo
        say "building $bin (cargo build --release)"
        (cd "$REPO_ROOT" && cargo build --release >&2)
    fi
    printf '%s\n' "$bin"
}

# Mount points at or under dir $1 (from /proc/self/mountinfo; spaces come as \040).
mounts_under() {
    local dir
    dir="$(realpath -m "$1")"
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}

# rm -rf "$1", but only when nothing is mounted at or under it.
safe_rmdir() {
    local dir="$1" m
    [[ -n "$dir" && -e "$dir" ]] || return 0
    m="$(mounts_under "$dir")"
    if [[ -n "$m" ]]; then
        printf 'warning: not removing %s: still mounted: %s\n' "$dir" "$(echo "$m" | tr '\n' ' ')" >&2
        return 1
    fi
    rm -rf -- "$dir"
}
