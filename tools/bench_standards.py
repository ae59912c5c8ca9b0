#!/usr/bin/env python3
"""SRU and OAI-PMH on a big file: Jalin beside Zebra, and a full harvest by Sickle.

Usage: cargo build --release && python3 tools/bench_standards.py MARC_FILE
Needs: pymarc, sickle (pip); yaz, idzebra-2.0, idzebra-2.0-examples (Debian).

1. `jalin import` of MARC_FILE into a fresh data dir, then `jalin start`.
2. Zebra 2 indexes the same file (../shared/tools/zebra-reference.sh) and serves SRU.
3. The same CQL queries to both over SRU 1.2 (recordSchema=dc, maximumRecords=10), in
   turns, each 3 times: 50 two-word title queries (`dc.title=w1 and dc.title=w2`, words
   from the titles of records spread over the file) and 50 one-word subject and creator
   queries. Latency p50 / p99 as the client sees it, and the ratio Jalin / Zebra; how many
   queries give the same number of hits on both.
4. Sickle harvests every record from Jalin's /oai (oai_dc, 100 a page): records/s.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_node import JALIN, ROOT, queries  # noqa: E402


def subject_and_creator_words(path, count=25):
    import pymarc

    subjects, creators = [], []
    with open(path, "rb") as fh:
        for i, record in enumerate(pymarc.MARCReader(fh, hide_utf8_warnings=True)):
            if record is None or i % 1999 != 11:
                continue
            for tag, out in (("650", subjects), ("100", creators)):
                fields = record.get_fields(tag)
                if fields and fields[0].get("a") and len(out) < count:
                    words = re.findall(r"[A-Za-z]{4,}", fields[0].get("a"))
                    if words:
                        out.append(words[0].lower())
            if len(subjects) >= count and len(creators) >= count:
                break
    return [f"dc.subject={w}" for w in subjects] + [f"dc.creator={w}" for w in creators]


def sru_url(base, query):
    return base + "?" + urllib.parse.urlencode(
        {"version": "1.2", "operation": "searchRetrieve", "query": query, "maximumRecords": 10, "recordSchema": "dc"}
    )


def hits(url):
    with urllib.request.urlopen(url) as response:
        body = response.read().decode()
    m = re.search(r"<zs:numberOfRecords>(\d+)<", body)
    return int(m.group(1)) if m else None


def main():
    path = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="jalin-bench-std-")
    data = os.path.join(work, "data")
    subprocess.run([JALIN, "--data-dir", data, "init", "--name", "Bench", "--code", "BENCH"], check=True, stdout=subprocess.DEVNULL)
    start = time.perf_counter()
    subprocess.run([JALIN, "--data-dir", data, "import", path], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"jalin import: {time.perf_counter() - start:.1f} s")
    node = subprocess.Popen([JALIN, "--data-dir", data, "start", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    for line in node.stdout:
        if "is serving " in line:
            url = line.split("is serving ", 1)[1].strip()
            break
    zwork = os.path.join(work, "zebra")
    zscript = os.path.join(ROOT, "..", "shared", "tools", "zebra-reference.sh")
    result = subprocess.run(["bash", zscript, path, zwork, "9873"], capture_output=True, text=True)
    print(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "zebra: no output")
    zebra = subprocess.Popen(["zebrasrv-2.0", "-f", "yazgfs.xml", "-l", "zebrasrv.log"], cwd=zwork)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:9873/Default?version=1.2&operation=explain").read()
                break
            except OSError:
                time.sleep(0.1)
        cql = [f"dc.title={a} and dc.title={b}" for a, b in queries(path)] + subject_and_creator_words(path)
        jalin_urls = [sru_url(f"{url}/sru", q) for q in cql]
        zebra_urls = [sru_url("http://127.0.0.1:9873/Default", q) for q in cql]
        same = sum(1 for j, z in zip(jalin_urls, zebra_urls) if hits(j) == hits(z))
        times = {"jalin": [], "zebra": []}
        for _ in range(3):
            for j, z in zip(jalin_urls, zebra_urls):
                for name, u in (("jalin", j), ("zebra", z)):
                    t = time.perf_counter()
                    with urllib.request.urlopen(u) as response:
                        response.read()
                    times[name].append((time.perf_counter() - t) * 1000)
        stats = {}
        for name, ts in times.items():
            ts.sort()
            stats[name] = (statistics.median(ts), ts[int(len(ts) * 0.99) - 1])
        print(f"## SRU searchRetrieve: {len(cql)} CQL queries x 3, in turns; same hit count on both for {same}")
        for name, (p50, p99) in stats.items():
            print(f"{name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        print(f"ratio jalin/zebra: p50 {stats['jalin'][0] / stats['zebra'][0]:.2f}, p99 {stats['jalin'][1] / stats['zebra'][1]:.2f}")
    finally:
        zebra.terminate()
        zebra.wait()

    harvest = (
        "import sys, time\n"
        "from sickle import Sickle\n"
        "t = time.perf_counter()\n"
        "n = sum(1 for _ in Sickle(sys.argv[1], timeout=600).ListRecords(metadataPrefix='oai_dc', ignore_deleted=False))\n"
        "print(n, time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", harvest, f"{url}/oai"], capture_output=True, text=True, check=True).stdout.split()
    n, seconds = int(out[0]), float(out[1])
    print("## OAI-PMH: Sickle ListRecords oai_dc, every record")
    print(f"{n} records in {seconds:.1f} s = {n / seconds:,.0f} records/s")

    # An incremental harvest: 100 records deleted after a date, then ListIdentifiers
    # from that date (what a daily harvest of an aggregator asks), and the same with no
    # change at all; the full harvest above is the baseline.
    first = urllib.request.urlopen(f"{url}/oai?verb=ListIdentifiers&metadataPrefix=oai_dc").read().decode()
    ids = [urllib.parse.unquote(i.split("/", 1)[1]) for i in re.findall(r"<identifier>([^<]+)</identifier>", first)][:100]
    time.sleep(1.1)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.1)
    for record_id in ids:
        subprocess.run([JALIN, "--data-dir", data, "record", "delete", record_id], check=True, stdout=subprocess.DEVNULL)
    time.sleep(1.1)
    after = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    incremental = (
        "import sys, time\n"
        "from sickle import Sickle\n"
        "from sickle.oaiexceptions import NoRecordsMatch\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    n = sum(1 for _ in Sickle(sys.argv[1], timeout=600).ListIdentifiers(metadataPrefix='oai_dc', ignore_deleted=False, **{'from': sys.argv[2]}))\n"
        "except NoRecordsMatch:\n"
        "    n = 0\n"
        "print(n, time.perf_counter() - t)\n"
    )
    print(f"## OAI-PMH: incremental ListIdentifiers among {n} records (full harvest above: {seconds:.1f} s)")
    for label, date in [(f"{len(ids)} deleted since", since), ("nothing changed since", after)]:
        out = subprocess.run([sys.executable, "-c", incremental, f"{url}/oai", date], capture_output=True, text=True, check=True).stdout.split()
        print(f"{label} {date}: {out[0]} identifiers in {float(out[1]) * 1000:.0f} ms ({float(out[1]) / seconds:.3f} of the full harvest)")
    node.terminate()
    node.wait()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
