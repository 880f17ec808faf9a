#!/usr/bin/env bash
# Captures real clients' traffic as fuzz seeds (issue 11): runs `kafkit cluster --capture`
# under kcat, confluent-kafka (librdkafka) and kafka-python — fuzz/capture/clients.py, then
# CI's two interop suites — and keeps up to 4 frames per API key, version and direction
# (spread by size; 16 for Produce and Fetch, whose batches carry every codec) in
# fuzz/seeds/<target>/. Run by hand (needs kcat, confluent-kafka and
# kafka-python, as .ci/run installs them); the seeds are committed and used by .ci/fuzz.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build -q -p kafkit-cli
bin="$root/target/debug/kafkit"
cap=$(mktemp -d)
work=$(mktemp -d)
export KAFKIT_CAPTURE_DIR="$cap"
"$bin" cluster --data-dir "$work/data" --port-base 0 >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q bootstrap "$work/out" 2>/dev/null && break; sleep 0.1; done
B=$(sed -n 's/^bootstrap: *//p' "$work/out" | head -1)
kcat -b "$B" -L >/dev/null
for z in none gzip snappy lz4 zstd; do
  seq 1 100 | awk '{print "key" $1 ":message " $1}' |
    kcat -b "$B" -t "cap-kcat-$z" -P -K: -z "$z" -H trace=abc -X acks=all 2>/dev/null || echo "kcat: no $z"
  kcat -b "$B" -t "cap-kcat-$z" -C -e -o beginning -q >/dev/null 2>&1 || true
done
kcat -b "$B" -G cap-kcat-group cap-kcat-none -c 100 -q -X auto.offset.reset=earliest >/dev/null
timeout 300 python3 fuzz/capture/clients.py "$B"
kill -TERM $pid; wait $pid || true
bash .ci/interop-kcat.sh "$bin" >/dev/null
bash .ci/interop-python.sh "$bin" >/dev/null 2>&1
python3 - "$cap" fuzz/seeds <<'PY'
import collections, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for target in sorted(os.listdir(src)):
    groups = collections.defaultdict(list)
    for f in os.listdir(os.path.join(src, target)):
        groups[f.rsplit("-", 1)[0]].append(f)
    out = os.path.join(dst, target)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    kept = 0
    for files in groups.values():
        files.sort(key=lambda f: os.path.getsize(os.path.join(src, target, f)))
        k = 16 if files[0].startswith(("Produce-", "Fetch-")) else 4
        picks = {files[round(i * (len(files) - 1) / (k - 1))] for i in range(k)} if len(files) > k else set(files)
        for f in picks:
            shutil.copy(os.path.join(src, target, f), os.path.join(out, f))
            kept += 1
    print(f"{target}: {kept} seeds for {len(groups)} api versions")
PY
rm -rf "$cap"
