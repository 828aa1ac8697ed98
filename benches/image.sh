#!/usr/bin/env bash
# Image pull + unpack: peapod vs skopeo copy + umoci unpack, side by side in one
# hyperfine run, from the same local registry (Debian's docker-registry on a free
# 127.0.0.1 port), on a generated multi-layer image of SIZE_MB (default 240) MB.
# Then unpack throughput of one layer: peapod vs `tar -xzf` on the same gzip layer.
# Prints medians and the ratios against the targets (pull: <= 0.5 x skopeo+umoci;
# unpack: <= 1.5 x tar).
#
#   sudo bash benches/image.sh                  # RUNS=5 WARMUP=1 LAYERS=4 SIZE_MB=240
#   BENCH_OUT=/some/dir sudo -E bash benches/image.sh   # also keep hyperfine's JSON
#
# Uses $PEAPOD, else target/release/peapod (built when missing). Needs root,
# hyperfine, docker-registry, skopeo, umoci, python3 (sudo bash scripts/setup.sh
# --deps-only installs them). Removes everything it creates, registry included.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
# shellcheck source=../scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib/common.sh"

runs="${RUNS:-5}"
warmup="${WARMUP:-1}"
layers="${LAYERS:-4}"
size_mb="${SIZE_MB:-240}"

require_root "benches/image.sh"
for tool in hyperfine docker-registry skopeo umoci python3 tar; do
    command -v "$tool" >/dev/null || die "$tool missing: run sudo bash scripts/setup.sh --deps-only"
done

peapod_binary() {
    if [[ -n "${PEAPOD:-}" ]]; then
        [[ -x "$PEAPOD" ]] || die "PEAPOD=$PEAPOD is not an executable"
        printf '%s\n' "$PEAPOD"
        return
    fi
    local bin="$REPO_ROOT/target/release/peapod"
    if [[ ! -x "$bin" ]]; then
        ensure_cargo
        say "building $bin (cargo build --release -p peapod-cli --bin peapod)"
        (cd "$REPO_ROOT" && cargo build --release -p peapod-cli --bin peapod >&2)
    fi
    printf '%s\n' "$bin"
}
peapod="$(peapod_binary)"

tmp="$(mktemp -d /tmp/peapod-image-bench.XXXXXX)"
registry_pid=""
cleanup() {
    local rc=$?
    if [[ -n "$registry_pid" ]]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
    fi
    safe_rmdir "$tmp" || rc=1
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "generating a $layers-layer image of about $size_mb MB in $tmp"
# The OCI layout is written here with python's tarfile and gzip (umoci insert of
# Debian 12's umoci 0.4.7 writes truncated layers).
python3 - "$tmp/layout" "$layers" "$size_mb" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile
lay, layers, size_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(42)
os.makedirs(os.path.join(lay, "blobs", "sha256"))
def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(lay, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d
descs, diff_ids = [], []
per_layer = size_mb * 1_000_000 // layers
for l in range(layers):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        written, n = 0, 0
        while written < per_layer:
            if n % 100 == 0:
                d = tarfile.TarInfo(f"layer{l}/d{n // 100}")
                d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
                t.addfile(d)
            size = rnd.choice([200, 4_000, 40_000, 400_000])
            # Half incompressible, half text: a realistic gzip ratio.
            data = os.urandom(size) if n % 2 else (b"peapod layer data %d\n" % n) * (size // 20)
            info = tarfile.TarInfo(f"layer{l}/d{n // 100}/f{n}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            t.addfile(info, io.BytesIO(data))
            written += size
            n += 1
    tar = raw.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
    blob = gzip.compress(tar, compresslevel=6, mtime=0)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(blob), "size": len(blob)})
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
                       "layers": descs}).encode()
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": put(manifest), "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
json.dump(index, open(os.path.join(lay, "index.json"), "w"))
open(os.path.join(lay, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
host="127.0.0.1:$port"
mkdir -p "$tmp/registry"
cat >"$tmp/registry/config.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $tmp/registry/data
http:
  addr: $host
YML
docker-registry serve "$tmp/registry/config.yml" >"$tmp/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
    curl_ok="$(python3 -c "import urllib.request as u; print(u.urlopen('http://$host/v2/').status)" 2>/dev/null || true)"
    [[ "$curl_ok" == 200 ]] && break
    sleep 0.1
done
[[ "${curl_ok:-}" == 200 ]] || die "docker-registry did not start: $(cat "$tmp/registry/log")"
skopeo copy --quiet --dest-tls-verify=false "oci:$tmp/layout:bench" "docker://$host/bench:1"
say "image in the registry: $host/bench:1"

out="${BENCH_OUT:-$tmp/out}"
mkdir -p "$out"
hyperfine --runs "$runs" --warmup "$warmup" --export-json "$out/pull.json" \
    --prepare "rm -rf $tmp/p" \
    -n "peapod pull" "$peapod --root $tmp/p --storage-driver overlay pull -q --insecure-registry $host $host/bench:1" \
    --prepare "rm -rf $tmp/s && mkdir -p $tmp/s" \
    -n "skopeo copy + umoci unpack" "skopeo copy --quiet --src-tls-verify=false docker://$host/bench:1 oci:$tmp/s/oci:bench && umoci unpack --image $tmp/s/oci:bench $tmp/s/bundle"

# The largest layer of the image, as a gzip file.
layer="$(python3 - "$tmp/layout" <<'PY'
import json, os, sys
lay = sys.argv[1]
def blob(d): return os.path.join(lay, "blobs", *d.split(":"))
ix = json.load(open(os.path.join(lay, "index.json")))
m = json.load(open(blob(ix["manifests"][0]["digest"])))
print(blob(max(m["layers"], key=lambda l: l["size"])["digest"]))
PY
)"
cp "$layer" "$tmp/layer.tar.gz"
hyperfine --runs "$runs" --warmup "$warmup" --export-json "$out/unpack.json" \
    --prepare "rm -rf $tmp/u1 && mkdir -p $tmp/u1" \
    -n "tar -xzf" "tar -xzf $tmp/layer.tar.gz -C $tmp/u1" \
    --prepare "rm -rf $tmp/u2 && mkdir -p $tmp/u2" \
    -n "peapod unpack" "$peapod image unpack-layer $tmp/layer.tar.gz $tmp/u2"

python3 - "$out/pull.json" "$out/unpack.json" "$tmp/layer.tar.gz" "$size_mb" <<'PY'
import json, os, statistics, sys
def medians(p):
    return {r["command"]: statistics.median(r["times"]) for r in json.load(open(p))["results"]}
pull, unpack = medians(sys.argv[1]), medians(sys.argv[2])
layer_mb = os.path.getsize(sys.argv[3]) / 1e6
p, s = pull["peapod pull"], pull["skopeo copy + umoci unpack"]
print(f"\npull + unpack of a {sys.argv[4]} MB image (median):")
print(f"  peapod                      {p:8.3f} s")
print(f"  skopeo copy + umoci unpack  {s:8.3f} s")
print(f"  ratio peapod / pair         {p / s:8.2f}   (target <= 0.5: {'met' if p / s <= 0.5 else 'NOT met'})")
t, u = unpack["tar -xzf"], unpack["peapod unpack"]
print(f"\nunpack of one {layer_mb:.0f} MB gzip layer (median):")
print(f"  tar -xzf                    {t:8.3f} s  ({layer_mb / t:6.1f} MB/s compressed)")
print(f"  peapod                      {u:8.3f} s  ({layer_mb / u:6.1f} MB/s compressed)")
print(f"  ratio peapod / tar          {u / t:8.2f}   (target <= 1.5: {'met' if u / t <= 1.5 else 'NOT met'})")
PY
