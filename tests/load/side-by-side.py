#!/usr/bin/env python3
"""Times `analyze` of one trace file with several perf-sentinel binaries,
runs interleaved round by round so that a busy machine slows them alike.

    python3 tests/load/side-by-side.py ROUNDS INPUT FORMAT CONFIG BIN [BIN...]

Prints each binary's median wall time (with quartiles) and peak RSS, then,
against the first binary, the ratio of the medians and the median of the
per-round ratios. Wall time is read with a monotonic clock around each run
(`/usr/bin/time` rounds to 10 ms, a twentieth of a 44k run).
"""

import os
import statistics
import subprocess
import sys
import time


def run(binary, args):
    """Wall seconds and peak RSS (KiB) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "analyze", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        sys.exit(f"{binary} failed: exit {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss


def quartiles(values):
    v = sorted(values)
    return v[len(v) // 4], statistics.median(v), v[3 * len(v) // 4]


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    inp, fmt, config = sys.argv[2:5]
    binaries = sys.argv[5:]
    args = ["--input", inp, "--config", config, "--format", fmt]
    wall = {b: [] for b in binaries}
    rss = {b: [] for b in binaries}
    for _ in range(rounds):
        for b in binaries:
            w, r = run(b, args)
            wall[b].append(w)
            rss[b].append(r)
    for b in binaries:
        q1, med, q3 = quartiles(wall[b])
        r1, rmed, r3 = quartiles(rss[b])
        print(
            f"{b}: wall median {med * 1000:.0f} ms (quartiles {q1 * 1000:.0f}-{q3 * 1000:.0f}), "
            f"peak RSS median {rmed / 1024:.1f} MB ({r1 / 1024:.1f}-{r3 / 1024:.1f})"
        )
    first = binaries[0]
    for b in binaries[1:]:
        ratios = [a / x for a, x in zip(wall[first], wall[b])]
        q1, med, q3 = quartiles(ratios)
        print(
            f"  {first} / {b}: ratio of medians {statistics.median(wall[first]) / statistics.median(wall[b]):.2f}, "
            f"per-round ratio median {med:.2f} (quartiles {q1:.2f}-{q3:.2f})"
        )


if __name__ == "__main__":
    main()
