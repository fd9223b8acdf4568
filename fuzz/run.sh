#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 30) on its seed corpus.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz passes
# nightly-only `-Z` flags to rustc; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. A crash stops the run with libFuzzer's report and
# leaves the input under fuzz/artifacts/<target>/; once fixed, the input
# becomes a case of tests/tests/bad_input.rs (or of the normalizers' unit
# tests), so that `cargo test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(native native_stream jaeger zipkin otlp_json otlp_protobuf sniffed sql_normalizer http_normalizer config)
fi
export RUSTC_BOOTSTRAP=1
bash fuzz/seed.sh > /dev/null
cargo fuzz build -O
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${secs}s"
  status=0
  extra=()
  if [[ " native_stream jaeger zipkin otlp_json otlp_protobuf " == *" $t "* ]]; then
    # These targets read through scoped worker threads (the streaming
    # readers). A thread's thread-local destructor record (glibc, 32 bytes)
    # is freed when the OS thread exits, which can be just after the scope
    # has joined it, so LeakSanitizer's per-input check may see it as a
    # leak once in tens of thousands of runs, more often on a loaded
    # machine. It is not a leak of the program's.
    extra=(-detect_leaks=0)
  fi
  cargo fuzz run -O "$t" "$PWD/fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
    -print_final_stats=1 "${extra[@]}" > "fuzz/logs/$t.log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^Done [0-9]+ runs" "fuzz/logs/$t.log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "fuzz/logs/$t.log" >&2
    echo "fuzz target $t failed (exit $status); the input is under fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
