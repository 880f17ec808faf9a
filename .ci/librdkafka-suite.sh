#!/usr/bin/env bash
# librdkafka's own integration tests (issue 16) against `kafkit cluster --partitions 4`: builds
# librdkafka 2.12.1 and its test-runner from the rdkafka-sys source cargo already downloaded
# (zlib only), then runs every test that needs a broker, each in its own test-runner process
# (a crash or hang costs one test), four at a time, with a per-test timeout. Prints one line
# per test and the counts; fails on any failure not in ALLOWED below.
#
# Usage: .ci/librdkafka-suite.sh path/to/kafkit [test-number-substring...]
# Not yet run by .ci/run (see issue 16's notes); run by hand.
set -euo pipefail
bin=$(cd "$(dirname "${1:?usage: librdkafka-suite.sh path/to/kafkit [tests...]}")" && pwd)/$(basename "$1")
shift
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work=${LIBRDKAFKA_SUITE_DIR:-$root/target/librdkafka-suite}
per_test=${LIBRDKAFKA_TEST_TIMEOUT:-180}

# Tests allowed to fail, and why.
declare -A ALLOWED=(
  [0052]="needs Kafka's shell tools (kafka-configs.sh)"
  [0077]="needs Kafka's shell tools; and log compaction"
  [0103]="transactions are not implemented"
  [0129]="transactions are not implemented"
  [0098]="transactions are not implemented (consumer side)"
  [0109]="needs Kafka's shell tools"
  [0115]="needs Kafka's shell tools (ACLs)"
  [0119]="needs Kafka's shell tools (ACLs)"
)

if [ ! -x "$work/tests/test-runner" ]; then
  cargo fetch -q
  src=$(ls -d "$HOME"/.cargo/registry/src/*/rdkafka-sys-4.10.0+2.12.1/librdkafka 2>/dev/null | head -1)
  [ -n "$src" ] || { echo "librdkafka suite: rdkafka-sys 4.10.0+2.12.1 source not found"; exit 1; }
  rm -rf "$work"; mkdir -p "$(dirname "$work")"; cp -r "$src" "$work"
  echo "librdkafka suite: building librdkafka and test-runner in $work"
  (cd "$work" && ./configure --disable-ssl --disable-gssapi --disable-zstd --disable-curl \
      --disable-lz4-ext && make -j2 libs && make -j2 -C tests build) >"$work/build.log" 2>&1 ||
    { tail -30 "$work/build.log"; exit 1; }
fi
export LD_LIBRARY_PATH="$work/src:$work/src-cpp"

data=$(mktemp -d)
"$bin" cluster --partitions 4 --port-base 0 --data-dir "$data/data" >"$data/cluster.out" 2>"$data/cluster.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q bootstrap "$data/cluster.out" 2>/dev/null && break; sleep 0.1; done
B=$(sed -n 's/^bootstrap: *//p' "$data/cluster.out" | head -1)
[ -n "$B" ] || { echo "librdkafka suite: cluster did not start"; cat "$data/cluster.err"; exit 1; }
printf 'bootstrap.servers=%s\n' "$B" >"$work/tests/test.conf"

if [ $# -gt 0 ]; then
  tests=("$@")
else
  # 0xxx: the suite; 8xxx are manual tests (8000 idles until stopped).
  mapfile -t tests < <(ls "$work/tests" | sed -n 's/^\(0[0-9]\{3\}\)-.*\.c\(pp\)\{0,1\}$/\1/p' | sort -u)
fi
mkdir -p "$data/logs"
run_one() {
  local n=$1 log="$data/logs/$1.log" rc=0
  (cd "$work/tests" && TESTS=$n TEST_KAFKA_VERSION=3.9.0 timeout "$per_test" ./test-runner -L -Q) >"$log" 2>&1 || rc=$?
  local clean; clean=$(sed 's/\x1b\[[0-9;]*m//g' "$log")
  if [ $rc -eq 124 ]; then echo "$n TIMEOUT"
  elif grep -q "No tests to run\|0 tests passed\b" <<<"$clean" && ! grep -q "PASSED" <<<"$clean"; then echo "$n SKIP"
  elif [ $rc -eq 0 ] && grep -q "FAILED: 0\b\|PASSED" <<<"$clean" && ! grep -q "TEST FAILURE\|tests failed" <<<"$clean"; then
    if grep -q "SKIPPED" <<<"$clean" && ! grep -q "Test [0-9_a-z]* PASSED" <<<"$clean"; then echo "$n SKIP"; else echo "$n PASS"; fi
  else echo "$n FAIL (rc $rc)"; fi
}
export -f run_one
export work data per_test
start=$(date +%s)
printf '%s\n' "${tests[@]}" | xargs -P 4 -I{} bash -c 'run_one {}' | sort >"$data/results.txt"
cat "$data/results.txt"
pass=$(grep -c " PASS" "$data/results.txt" || true)
skip=$(grep -c " SKIP" "$data/results.txt" || true)
unexpected=0; allowed=0
while read -r n verdict _; do
  case $verdict in
    FAIL|TIMEOUT)
      if [ -n "${ALLOWED[$n]:-}" ]; then allowed=$((allowed + 1)); echo "allowed: $n — ${ALLOWED[$n]}"
      else unexpected=$((unexpected + 1)); echo "--- $n"; sed 's/\x1b\[[0-9;]*m//g' "$data/logs/$n.log" | grep -i "fail\|error" | tail -5; fi ;;
  esac
done <"$data/results.txt"
kill -0 $pid 2>/dev/null || { echo "librdkafka suite: the cluster died"; unexpected=$((unexpected + 1)); }
echo "librdkafka suite: $pass passed, $allowed allowed failures, $unexpected unexpected failures, $skip skipped (local-only or not applicable) in $(( $(date +%s) - start ))s; logs in $data/logs"
[ $unexpected -eq 0 ]
