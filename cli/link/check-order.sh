#!/usr/bin/env bash
# Checks that cli/link/startup.order still names the functions of a release
# binary: usage `check-order.sh PATH/TO/release/perf-sentinel`.
#
# Symbol names change as the code does (a closure added before another
# renames it, a generic used with a new type is a new name), and the linker
# skips the names it does not find, so a stale list silently costs idle RSS:
# 6 MB against 8 MB after one session of changes (docs/PERFORMANCE.md).
# Below 80 % of the names found, rebuild the list with
# cli/link/refresh-order.sh.
set -euo pipefail
bin=${1:?usage: check-order.sh PATH/TO/release/perf-sentinel}
[[ -f "$bin" ]] || { echo "check-order: $bin: no such file" >&2; exit 2; }
bin=$(realpath "$bin")
cd "$(dirname "$0")"

# build.rs hands the list to the linker only on this target.
if [[ "$(uname -sm)" != "Linux x86_64" ]]; then
  echo "check-order: the list is used on x86_64 Linux only; skipped" >&2
  exit 0
fi

total=$(sort -u startup.order | wc -l)
found=$(nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ { print $3 }' | sort -u |
  comm -12 - <(sort -u startup.order) | wc -l)
pct=$((100 * found / total))
echo "check-order: $found of $total names of cli/link/startup.order in $bin ($pct %)" >&2
if (( pct < 80 )); then
  echo "check-order: the start-up order is stale; run cli/link/refresh-order.sh" >&2
  exit 1
fi
