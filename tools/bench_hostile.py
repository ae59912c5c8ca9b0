#!/usr/bin/env python3
"""A node under load and under attack: peak RSS under concurrent heavy requests, and each
hostile request tried many times.

Usage: cargo build --release && python3 tools/bench_hostile.py [RECORDS] [HEAVY_REQUESTS_MAX]

1. Makes a MARC file of RECORDS records (default 250,000) from
   ../shared/data/marc/loc/loc-books-10k.mrc, each copy with its own 001, imports it
   into a fresh data dir (`jalin import`), and starts `jalin start`.
2. Load: 200 clients at once, each one heavy request (SRU masking `dc.title=*a*` with
   maximumRecords=100, `/api/export` read to its end, `/api/search` of a common word),
   while a watcher asks `/api/status` every 100 ms. Peak RSS of the node (VmHWM), how
   many of the 200 were answered 200 and how many 503, and the slowest `/api/status`.
3. Hostile: every crashing or unbounded request of issue 13, each sent N times: how many
   were accepted (a 2xx with work done, or the node gone) -- the target is 0 -- and whether
   the node still answers after each.
"""
import base64
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
JALIN = os.path.join(ROOT, "target", "release", "jalin")
SOURCE = os.path.join(ROOT, "..", "shared", "data", "marc", "loc", "loc-books-10k.mrc")


def make_file(path, count):
    import pymarc

    records = []
    with open(SOURCE, "rb") as fh:
        for record in pymarc.MARCReader(fh, hide_utf8_warnings=True):
            if record is not None:
                records.append(record)
    written = 0
    with open(path, "wb") as out:
        copy = 0
        while written < count:
            for record in records:
                if written >= count:
                    break
                for field in record.get_fields("001"):
                    record.remove_field(field)
                record.add_ordered_field(pymarc.Field(tag="001", data=f"b{copy:03d}{written:08d}"))
                out.write(record.as_marc())
                written += 1
            copy += 1
    return written


def get(url, timeout=120):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            size = 0
            while True:
                chunk = response.read(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
            return response.status, size
    except urllib.error.HTTPError as e:
        return e.code, 0
    except Exception as e:  # noqa: BLE001 - a refused or reset connection counts too
        return type(e).__name__, 0


def rss_parts(pid):
    """Resident memory now, in MB: anonymous (heap, stacks) and file-backed (the index's
    and the store's mapped files, which the kernel may drop under pressure)."""
    parts = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key = line.split(":")[0]
            if key in ("RssAnon", "RssFile", "RssShmem"):
                parts[key] = int(line.split()[1]) / 1024.0
    return parts.get("RssAnon", 0.0), parts.get("RssFile", 0.0) + parts.get("RssShmem", 0.0)


def rss_peak(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 250_000
    heavy_max = int(sys.argv[2]) if len(sys.argv) > 2 else None
    work = tempfile.mkdtemp(prefix="jalin-hostile-")
    marc = os.path.join(work, "records.mrc")
    made = make_file(marc, count)
    data = os.path.join(work, "data")
    subprocess.run([JALIN, "--data-dir", data, "init", "--name", "Bench", "--code", "BENCH"], check=True,
                   stdout=subprocess.DEVNULL)
    if heavy_max is not None:
        config = os.path.join(data, "config.toml")
        with open(config) as fh:
            text = fh.read()
        with open(config, "w") as fh:
            fh.write(re.sub(r"heavy_requests_max = \d+", f"heavy_requests_max = {heavy_max}", text))
    started = time.perf_counter()
    subprocess.run([JALIN, "--data-dir", data, "import", marc], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    print(f"imported {made} records in {time.perf_counter() - started:.1f} s")
    node = subprocess.Popen([JALIN, "--data-dir", data, "start", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    for line in node.stdout:
        if "is serving" in line:
            url = line.strip().split()[-1]
            break
    assert url, "the node did not start"
    rss_idle = rss_peak(node.pid)

    # 2. Load.
    statuses = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            t = time.perf_counter()
            status, _ = get(url + "/api/status", timeout=30)
            statuses.append((time.perf_counter() - t, status))
            time.sleep(0.1)

    peaks = {"anon": 0.0, "file": 0.0}

    def sample():
        while not stop.is_set():
            anon, mapped = rss_parts(node.pid)
            peaks["anon"] = max(peaks["anon"], anon)
            peaks["file"] = max(peaks["file"], mapped)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    sampler = threading.Thread(target=sample)
    sampler.start()
    heavy = []
    for i in range(200):
        kind = i % 3
        if kind == 0:
            heavy.append(url + "/sru?" + urllib.parse.urlencode(
                {"version": "1.2", "operation": "searchRetrieve", "query": "dc.title=*a*", "maximumRecords": 100}))
        elif kind == 1:
            heavy.append(url + "/api/export")
        else:
            heavy.append(url + "/api/search?q=history&per_page=100")
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(get, heavy))
    load_s = time.perf_counter() - t
    stop.set()
    watcher.join()
    sampler.join()
    ok = sum(1 for s, _ in results if s == 200)
    busy = sum(1 for s, _ in results if s == 503)
    other = [s for s, _ in results if s not in (200, 503)]
    slowest = max(d for d, _ in statuses)
    times = sorted(d for d, _ in statuses)
    p50, p99 = times[len(times) // 2], times[min(len(times) - 1, len(times) * 99 // 100)]
    status_failures = sum(1 for _, s in statuses if s != 200)
    print(f"load: 200 heavy requests in {load_s:.1f} s: {ok} answered 200, {busy} answered 503, other: {other}")
    print(f"node RSS: {rss_idle:.0f} MB after start, peak {rss_peak(node.pid):.0f} MB under load "
          f"(sampled every 50 ms: anonymous at most {peaks['anon']:.0f} MB, file-backed at most {peaks['file']:.0f} MB)")
    print(f"/api/status during load: {len(statuses)} asked, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
          f"slowest {slowest * 1000:.0f} ms, {status_failures} not 200")

    # 3. Hostile requests.
    def sru(query):
        return url + "/sru?" + urllib.parse.urlencode({"version": "1.2", "operation": "searchRetrieve",
                                                       "query": query})

    cases = [
        ("SRU, 300 `or` terms", sru(" or ".join(["sejarah"] * 300)), 20),
        ("SRU, 10,000 nested parentheses", sru("(" * 10_000 + "a" + ")" * 10_000), 20),
        ("SRU, 3,000 nested parentheses", sru("(" * 3_000 + "a" + ")" * 3_000), 20),
        ("search, page 200000000000", url + "/api/search?q=indonesia&page=200000000000&per_page=100", 20),
        ("search, page u64::MAX", url + "/api/search?q=indonesia&page=18446744073709551615", 20),
        ("search, 2,000 OR terms", url + "/api/search?" + urllib.parse.urlencode({"q": " OR ".join(["a"] * 2000)}), 20),
        ("OAI, cursor u64::MAX", url + "/oai?verb=ListRecords&resumptionToken=" + base64.urlsafe_b64encode(
            b'{"p":"oai_dc","k":"","c":18446744073709551615}').rstrip(b"=").decode(), 20),
        ("Host evil.example", ("HOST", url + "/api/status"), 20),
    ]
    print("| case | tries | accepted | node answered after |")
    print("|---|---|---|---|")
    for name, target, tries in cases:
        accepted = 0
        alive = 0
        for _ in range(tries):
            if isinstance(target, tuple):
                request = urllib.request.Request(target[1], headers={"Host": "evil.example"})
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status = response.status
                except urllib.error.HTTPError as e:
                    status = e.code
                body_ok = status == 200
            else:
                status, _ = get(target, timeout=60)
                body_ok = status == 200 and "SRU" not in name and "OAI" not in name
                if status == 200 and ("SRU" in name or "OAI" in name):
                    with urllib.request.urlopen(target, timeout=60) as response:
                        text = response.read().decode()
                    body_ok = "diagnostic" not in text and "badResumptionToken" not in text
            accepted += int(body_ok or not isinstance(status, int))
            alive += int(get(url + "/api/status", timeout=10)[0] == 200)
        print(f"| {name} | {tries} | {accepted} | {alive} of {tries} |")
    node.terminate()
    node.wait()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
