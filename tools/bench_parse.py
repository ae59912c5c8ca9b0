#!/usr/bin/env python3
"""Parse throughput and peak RSS: Jalin's reader beside pymarc 5.4.0, same file, same run.

Usage: cargo build --release && python3 tools/bench_parse.py FILE...
Each side runs in its own process; peak RSS is that process's maxrss (from wait4).
Jalin's side is `jalin inspect --json FILE` (read, decode, crosswalk every record);
pymarc's side is MARCReader over the file, touching every record.
"""
import json
import os
import subprocess
import sys
import time

PYMARC = (
    "import sys, pymarc\n"
    "n = 0\n"
    "with open(sys.argv[1], 'rb') as fh:\n"
    "    for record in pymarc.MARCReader(fh, hide_utf8_warnings=True):\n"
    "        if record is not None: n += 1\n"
    "print(n)\n"
)


def run(argv):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    return out, elapsed, usage.ru_maxrss / 1024.0, status


jalin = os.path.join(os.path.dirname(__file__), "..", "target", "release", "jalin")
print(f"{'file':34} {'tool':7} {'records':>8} {'seconds':>8} {'records/s':>10} {'peak RSS MB':>11}")
for path in sys.argv[1:]:
    out, t_j, rss_j, _ = run([jalin, "inspect", "--json", path])
    n_j = json.loads(out)["records"]
    out, t_p, rss_p, _ = run([sys.executable, "-c", PYMARC, path])
    n_p = int(out)
    name = os.path.basename(path)
    print(f"{name:34} {'jalin':7} {n_j:8} {t_j:8.2f} {n_j / t_j:10.0f} {rss_j:11.1f}")
    print(f"{name:34} {'pymarc':7} {n_p:8} {t_p:8.2f} {n_p / t_p:10.0f} {rss_p:11.1f}")
    print(f"{name:34} ratio: jalin is {(n_j / t_j) / (n_p / t_p):.1f}x pymarc's records/s")
