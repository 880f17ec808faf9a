#!/usr/bin/env bash
# Runs every cargo-fuzz target for $1 seconds (two at a time) from generated seed corpora and
# fails on any crash, leak-free timeout or out-of-memory. Crash inputs land in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz@0.13.2
fi
cargo run -q --example gen_seeds -- corpus
cargo fuzz build -s none -O
targets=(request_decoding response_decoding record_batch legacy_message_set)
run() {
  local t="$1"
  # Inputs that once crashed a target (kept in git) run first, as part of the corpus.
  local extra=()
  [ -d "regressions/$t" ] && extra=("regressions/$t")
  if cargo fuzz run -s none -O "$t" "corpus/$t" "${extra[@]}" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      >"/tmp/fuzz-$t.log" 2>&1; then
    echo "fuzz: $t ok: $(grep -E '^Done' "/tmp/fuzz-$t.log")"
  else
    echo "fuzz: $t FAILED"; tail -40 "/tmp/fuzz-$t.log"; return 1
  fi
}
status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run "${targets[i]}" & a=$!
  run "${targets[i+1]}" & b=$!
  wait $a || status=1
  wait $b || status=1
done
exit $status
