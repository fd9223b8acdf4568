#!/usr/bin/env bash
# Rewrites cli/link/startup.order: the functions of the release binary that
# run while the daemon starts, idles and drains, then those that `analyze`
# adds on the bundled demo, which build.rs asks the linker to place together
# in that order.
#
# Run it after a change of compiler, of a dependency or of start-up code,
# then rebuild and compare idle RSS (docs/PERFORMANCE.md). It needs valgrind.
# Names are those of `cargo build --release -p perf-sentinel` with default
# features; names missing from another build are skipped by the linker.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

cargo build --release -p perf-sentinel
bin="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/perf-sentinel"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# From an empty directory, so that no .perf-sentinel.toml is read; the JSON
# socket goes there too.
printf '[daemon]\njson_socket = "%s/ps.sock"\n' "$work" > "$work/config.toml"
(cd "$work" && exec valgrind --tool=callgrind --demangle=no \
  --callgrind-out-file="$work/daemon.out" "$bin" watch --config config.toml \
  --listen-address 127.0.0.1 --listen-port-grpc 0 --listen-port-http 0 \
  > "$work/stdout" 2> "$work/stderr") &
daemon=$!
for _ in $(seq 100); do
  grep -q 'daemon listening' "$work/stderr" && break
  sleep 0.2
done
grep -q 'daemon listening' "$work/stderr" || { cat "$work/stderr" >&2; exit 1; }
# Idle long enough for the periodic tasks to run, then drain and exit.
sleep 3
kill -INT "$daemon"
wait "$daemon"

# A batch run on the demo traces, for the functions only `analyze` runs.
(cd "$work" && valgrind --tool=callgrind --demangle=no \
  --callgrind-out-file="$work/analyze.out" "$bin" analyze --config config.toml \
  --input "$root/examples/demo-traces.json" --format json > /dev/null 2>&1) || true

# Every function callgrind saw (first seen first; the daemon's, then the
# batch run's), kept if the binary defines it: code of the C library and the
# loader is left out.
nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u > "$work/defined"
for run in daemon analyze; do
  grep -oE '^c?fn=\([0-9]+\) .+' "$work/$run.out" |
    sed -E "s/^c?fn=\(([0-9]+)\) (.*)/\1 \2/; s/'[0-9]+\$//" |
    sort -n -k1,1 | cut -d' ' -f2-
done | awk '!seen[$0]++' > "$work/seen"
awk 'NR == FNR { defined[$0] = 1; next } defined[$0]' "$work/defined" "$work/seen" \
  > cli/link/startup.order
echo "cli/link/startup.order: $(wc -l < cli/link/startup.order) functions" >&2
