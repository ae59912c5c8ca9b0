#!/usr/bin/env python3
"""A library's node on a big file, beside the tools a librarian would use instead.

Usage: cargo build --release && python3 tools/bench_node.py MARC_FILE [--zebra]

1. Import: `jalin import` of MARC_FILE into a fresh data dir (parse, store, index), beside
   pymarc 5.4.0 merely parsing the same file; records/s and peak RSS of each process.
2. Restart: `jalin start` on that data dir until it prints its URL; the data dir's size.
3. Search: 50 title queries (two words from the titles of 50 records spread over the
   file), each asked 3 times over HTTP (`/api/search?q=title:w1 title:w2&per_page=10`);
   latency p50 and p99 as the client sees it.
4. With --zebra: Zebra 2 (Debian idzebra-2.0) indexes the same records
   (../shared/tools/zebra-reference.sh) and answers the same queries over SRU
   (`dc.title=w1 and dc.title=w2`, maximumRecords=10): index time and latency, as ratios.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
JALIN = os.path.join(ROOT, "target", "release", "jalin")


def timed(argv):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    return out, err, time.perf_counter() - start, usage.ru_maxrss / 1024.0, status


PYMARC = (
    "import sys, pymarc\n"
    "n = 0\n"
    "with open(sys.argv[1], 'rb') as fh:\n"
    "    for record in pymarc.MARCReader(fh, hide_utf8_warnings=True):\n"
    "        if record is not None: n += 1\n"
    "print(n)\n"
)


def queries(path, count=50):
    import pymarc

    titles = []
    with open(path, "rb") as fh:
        for i, record in enumerate(pymarc.MARCReader(fh, hide_utf8_warnings=True)):
            if record is not None and i % 2999 == 7:
                fields = record.get_fields("245")
                if fields and fields[0].get("a"):
                    words = [w for w in re.findall(r"[A-Za-z]{4,}", fields[0].get("a"))]
                    if len(words) >= 2:
                        titles.append((words[0].lower(), words[1].lower()))
            if len(titles) >= count:
                break
    return titles


def latency(urls):
    times = []
    for _ in range(3):
        for url in urls:
            start = time.perf_counter()
            with urllib.request.urlopen(url) as response:
                response.read()
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main():
    path = os.path.abspath(sys.argv[1])
    zebra = "--zebra" in sys.argv
    work = tempfile.mkdtemp(prefix="jalin-bench-")
    data = os.path.join(work, "data")
    subprocess.run([JALIN, "--data-dir", data, "init", "--name", "Bench", "--code", "BENCH"], check=True, stdout=subprocess.DEVNULL)

    out, _, t_p, rss_p, _ = timed([sys.executable, "-c", PYMARC, path])
    n_p = int(out)
    out, err, t_j, rss_j, status = timed([JALIN, "--data-dir", data, "import", path])
    summary = next(line for line in out.decode().splitlines() if " read, " in line)
    n_j = int(re.search(r"(\d+) read", summary).group(1))
    print("## Import")
    print(f"pymarc parse:  {n_p} records in {t_p:.1f} s = {n_p / t_p:,.0f} records/s, peak RSS {rss_p:.0f} MB")
    print(f"jalin import:  {n_j} records in {t_j:.1f} s = {n_j / t_j:,.0f} records/s, peak RSS {rss_j:.0f} MB")
    print(f"ratio: jalin's full import runs at {(n_j / t_j) / (n_p / t_p):.2f}x pymarc's parse rate")

    start = time.perf_counter()
    node = subprocess.Popen([JALIN, "--data-dir", data, "start", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    for line in node.stdout:
        if "is serving " in line:
            url = line.split("is serving ", 1)[1].strip()
            break
    restart = time.perf_counter() - start
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data) for f in fs)
    print("## Restart")
    print(f"jalin start until serving: {restart:.2f} s; data dir {size / 1e6:.0f} MB")

    qs = queries(path)
    jalin_urls = [f"{url}/api/search?" + urllib.parse.urlencode({"q": f"title:{a} title:{b}", "per_page": 10}) for a, b in qs]
    hits = [json.load(urllib.request.urlopen(u))["total"] for u in jalin_urls]
    p50, p99 = latency(jalin_urls)
    node.terminate()
    node.wait()
    print("## Search")
    print(f"{len(qs)} queries x 3; {sum(1 for h in hits if h > 0)} with hits")
    print(f"jalin: p50 {p50:.2f} ms, p99 {p99:.2f} ms")

    if zebra:
        zwork = os.path.join(work, "zebra")
        zscript = os.path.join(ROOT, "..", "shared", "tools", "zebra-reference.sh")
        result = subprocess.run(["bash", zscript, path, zwork, "9871"], capture_output=True, text=True)
        m = re.search(r"zebra indexing took ([0-9.]+) s", result.stderr)
        zebra_index = float(m.group(1)) if m else float("nan")
        server = subprocess.Popen(["zebrasrv-2.0", "-f", "yazgfs.xml", "-l", "zebrasrv.log"], cwd=zwork)
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:9871/Default?version=1.2&operation=explain").read()
                break
            except OSError:
                time.sleep(0.1)
        zebra_urls = [
            "http://127.0.0.1:9871/Default?"
            + urllib.parse.urlencode({"version": "1.2", "operation": "searchRetrieve", "query": f"dc.title={a} and dc.title={b}", "maximumRecords": 10, "recordSchema": "dc"})
            for a, b in qs
        ]
        z50, z99 = latency(zebra_urls)
        server.terminate()
        server.wait()
        print("## Zebra")
        print(f"zebra index (zebraidx of the MARCXML, conversion not counted): {zebra_index:.1f} s; jalin import {t_j:.1f} s; ratio jalin/zebra {t_j / zebra_index:.2f}")
        print(f"zebra SRU: p50 {z50:.2f} ms, p99 {z99:.2f} ms; ratio jalin/zebra p50 {p50 / z50:.2f}, p99 {p99 / z99:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
