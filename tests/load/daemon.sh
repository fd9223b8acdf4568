#!/usr/bin/env bash
# Measures the daemon under OTLP load on loopback: starts a release
# `perf-sentinel watch` on free ports, runs load-otlp against it, then prints
# the daemon's span accounting, idle, steady and peak RSS, and its CPU time.
#
#   cargo build --release -p perf-sentinel -p perf-sentinel-tests
#   bash tests/load/daemon.sh grpc|http SECONDS CONNECTIONS [SPANS_PER_SEC]
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
proto=$1 secs=$2 conns=$3 rate=${4:-0}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '[daemon]\njson_socket = ""\ntrace_ttl_ms = 1000\n' > "$dir/.perf-sentinel.toml"
(cd "$dir" && exec "$target/perf-sentinel" watch --listen-port-http 0 --listen-port-grpc 0 > /dev/null 2> log) &
pid=$!
for _ in $(seq 100); do grep -q "daemon listening" "$dir/log" 2>/dev/null && break; sleep 0.1; done
http=$(grep -o 'http=[0-9.:]*' "$dir/log" | head -1 | cut -d= -f2)
grpc=$(grep -o 'grpc=[0-9.:]*' "$dir/log" | head -1 | cut -d= -f2)
sleep 1
idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
addr=$grpc
[ "$proto" = http ] && addr=$http
ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
t0=$(ticks)
# RSS every half second while the load runs: the window's steady state
# shows between the ramp at the start and the flush at the end.
(for _ in $(seq $((secs * 2))); do
    sleep 0.5
    awk '/VmRSS/ {printf "%d ", $2 / 1024}' /proc/$pid/status 2>/dev/null || true
done) > "$dir/rss" &
sampler=$!
"$target/load-otlp" "$proto" "$addr" --seconds "$secs" --connections "$conns" --rate "$rate"
t1=$(ticks)
# Let the window (TTL 1 s) empty, then read the books.
sleep 2.5
curl -s "http://$http/metrics" | grep -E "^perf_sentinel_(spans_|analysis_shed|otlp_rejected)" | grep -v " 0$" || true
wait $sampler || true
echo "RSS during the load, every 0.5 s (MB): $(cat "$dir/rss")"
echo "RSS once the window is empty: $(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' /proc/$pid/status) MB"
peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
hz=$(getconf CLK_TCK)
awk -v i="$idle" -v p="$peak" -v c="$((t1 - t0))" -v hz="$hz" -v s="$secs" \
    'BEGIN { printf "idle RSS %.1f MB, peak RSS %.0f MB, daemon CPU %.2f s over %s s of load (%.2f cores)\n", i / 1024, p / 1024, c / hz, s, c / hz / s }'
kill -TERM $pid
wait $pid && echo "exit 0"
