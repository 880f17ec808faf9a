#!/usr/bin/env bash
# The reader at scale (issue 13, docs/BENCHMARKS.md): kafkit vs librdkafka consuming 1,000,000
# records of 100 B from 6, 300 and 1,000 partitions, each client in its own process (peak RSS
# from /usr/bin/time) against one release `kafkit cluster` process.
#
# Usage: cargo build --release -p kafkit-cli --features rdkafka && bash benches/consume-scale.sh
set -euo pipefail
K=${KAFKIT:-$(cd "$(dirname "$0")/.." && pwd)/target/release/kafkit}
d=$(mktemp -d)
"$K" cluster --port-base 0 --data-dir "$d/data" >"$d/out" 2>"$d/err" &
cpid=$!
trap 'kill $cpid 2>/dev/null || true; wait $cpid 2>/dev/null || true; rm -rf "$d"' EXIT
for _ in $(seq 100); do grep -q bootstrap "$d/out" 2>/dev/null && break; sleep 0.1; done
B=$(sed -n 's/^bootstrap: *//p' "$d/out" | head -1)
echo "cluster $B"
run() { # topic partitions rf client
  if ! /usr/bin/time -f "%M" -o "$d/rss" "$K" perf consume -b "$B" -t "$1" --partitions "$2" \
      --replication-factor "$3" --num-records 1000000 --client "$4" --json >"$d/json" 2>"$d/perr"; then
    echo "FAIL $*"; tail -3 "$d/perr"; return
  fi
  # records/s from creation to the last record, and from the first record on (the group join
  # left out: librdkafka's takes ~150 ms, kafkit's a few ms).
  rps=$(python3 -c "import json; d=json.load(open('$d/json')); print(round(d['records_per_sec']), round(d['records'] / (d['elapsed_s'] - d['first_record_ms'] / 1000)))")
  echo "$1 partitions=$2 rf=$3 $4 records/s,after-first=$rps peak_rss_kib=$(cat "$d/rss")"
}
for spec in "6 -1" "300 1" "1000 1"; do
  set -- $spec; P=$1; RF=$2; T=bench-$P
  # Fill the topic once (not measured).
  "$K" perf consume -b "$B" -t "$T" --partitions "$P" --replication-factor "$RF" \
    --num-records 1000000 --client kafkit --json >/dev/null 2>&1
  for c in kafkit librdkafka kafkit librdkafka; do run "$T" "$P" "$RF" "$c"; done
  if [ "$P" = 6 ]; then run "$T" "$P" "$RF" librdkafka-defaults; fi
done
