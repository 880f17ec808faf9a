#!/usr/bin/env bash
# kafka-python and confluent-kafka (librdkafka 2.16) against `kafkit cluster`.
set -euo pipefail
bin=${1:?usage: interop-python.sh path/to/kafkit}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
port=$(( 30000 + RANDOM % 20000 ))
"$bin" cluster --data-dir "$work/data" --port-base "$port" >"$work/cluster.out" 2>"$work/cluster.err" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q bootstrap "$work/cluster.out" 2>/dev/null && break; sleep 0.1; done
if ! timeout 300 python3 "$here/interop_python.py" "127.0.0.1:$port,127.0.0.1:$((port + 1))"; then
  echo "--- cluster log"; tail -50 "$work/cluster.err"; exit 1
fi
