#!/usr/bin/env python3
"""The network's costs, measured with real `jalin start` processes on 127.0.0.1.

Usage: cargo build --release && python3 tools/bench_network.py MARC_FILE [--only NAME]...
MARC_FILE: the LC "Books All" file (tools: ../shared/data/marc/loc/fetch-loc-booksall.sh).
NAME: catchup, bootstrap, propagation, propagation-mesh, memory (default: all five).

1. catchup: A holds 100,000 records and B a copy. B stops; A changes one record; B starts
   and catches up. The sync protocol's bytes (both ways, as B's node counts them) and
   round trips; beside them what an OAI-PMH harvester would move for the same change,
   computed from the record's MARCXML and the OAI-PMH envelope of the fixtures in
   ../shared/data/oai/ (an incremental harvest: one record; a full one: every record).
2. bootstrap: a new member C gets A's 100,000 records from A: time, bytes, peak RSS of C.
3. propagation: 10 nodes, 1,000 records each, in a chain (each knows only the one before:
   9 hops) and, as propagation-mesh, each connected to every other; a new record imported
   at the first until it is searchable on all ten (polled over HTTP): p50 and p95 of 20.
4. memory: one node holding 10 libraries x 25,000 records (it syncs them from the ten
   owners): its peak RSS, and its RSS after a restart and a search.

Only the sync protocol's bytes are counted (request and response payloads: CBOR); Noise
and Yamux framing add about 0.5%, and identify, ping and gossip are not included.
"""
import atexit
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# JALIN_BIN: another build to measure (a copy built with `--features system-allocator`).
JALIN = os.environ.get("JALIN_BIN", os.path.join(ROOT, "target", "release", "jalin"))
OAI = os.path.join(ROOT, "..", "shared", "data", "oai")


def jalin(data, *args, check=True):
    proc = subprocess.run(
        [JALIN, "--data-dir", data, *args], capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise SystemExit(f"jalin {' '.join(args)} failed: {proc.stderr}{proc.stdout}")
    return proc.stdout


def marc_records(path, skip=0, count=None):
    """Raw ISO 2709 records of a file (by the record length in the leader)."""
    out = []
    with open(path, "rb") as fh:
        data = fh.read()
    at = 0
    n = 0
    while at + 5 <= len(data):
        length = int(data[at : at + 5])
        if n >= skip:
            out.append(data[at : at + length])
            if count is not None and len(out) >= count:
                break
        n += 1
        at += length
    return out


def write_records(path, records):
    with open(path, "wb") as fh:
        for r in records:
            fh.write(r)


def no_mdns(data):
    """Turns mDNS off: on one machine every node would find every other by it, and a
    benchmark's topology (a chain; owners that know only the observer) would not hold."""
    path = os.path.join(data, "config.toml")
    with open(path) as fh:
        text = fh.read()
    assert "mdns = true" in text, path
    with open(path, "w") as fh:
        fh.write(text.replace("mdns = true", "mdns = false"))


def consortium(dirs, names):
    """Inits each data dir and forms one consortium among them, by text, offline."""
    for d, name in zip(dirs, names):
        jalin(d, "init", "--name", f"Perpustakaan {name}", "--code", name)
        no_mdns(d)
    founder = dirs[0]
    jalin(founder, "consortium", "create", "--name", "Bench")
    tmp = tempfile.mkdtemp()
    for d in dirs[1:]:
        ticket = jalin(founder, "invite", "create").splitlines()[0]
        acc = os.path.join(tmp, "acc.txt")
        jalin(d, "join", ticket, "--offline", "--out", acc)
        jalin(founder, "consortium", "accept", acc)
    docs = os.path.join(tmp, "docs.txt")
    jalin(founder, "consortium", "export", docs)
    for d in dirs[1:]:
        jalin(d, "consortium", "import", docs)
    shutil.rmtree(tmp)


RUNNING = []


@atexit.register
def _kill_running():
    """A run that fails half way leaves no node behind to load the next one."""
    for proc in RUNNING:
        if proc.poll() is None:
            proc.kill()


class Node:
    def __init__(self, data, wrap=()):
        self.data = data
        self.proc = subprocess.Popen(
            [*wrap, JALIN, "--data-dir", data, "start", "--listen", "127.0.0.1:0",
             "--p2p-listen", "/ip4/127.0.0.1/tcp/0"],
            stdout=subprocess.PIPE, stderr=open(os.environ.get("BENCH_NODE_LOG", os.devnull), "a"), text=True,
        )
        RUNNING.append(self.proc)
        self.url = None
        self.p2p = None
        for line in self.proc.stdout:
            if "is serving " in line:
                self.url = line.split("is serving ", 1)[1].strip()
            if line.strip().startswith("p2p: "):
                self.p2p = line.strip()[5:]
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def sync(self):
        return self.get("/api/sync")

    def catalog(self, library_id):
        for c in self.sync()["catalogs"]:
            if c["library_id"] == library_id:
                return c
        return None

    def found(self, word):
        q = urllib.parse.quote(word)
        return self.get(f"/api/search?q={q}&per_page=1")["total"]

    def rss_peak_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"note: the node of {self.data} did not stop within 30 s of SIGTERM; killed",
                  flush=True)
            self.proc.kill()
            self.proc.wait()


def own_id(data):
    return json.loads(jalin(data, "status", "--json"))["library_id"]


def wait(what, condition, seconds=900, interval=0.05):
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def edited(record, note):
    """The record with a 500 note added (ISO 2709 rewritten by pymarc)."""
    import pymarc

    r = next(pymarc.MARCReader(record, to_unicode=True, force_utf8=True))
    r.add_field(pymarc.Field(tag="500", indicators=[" ", " "],
                             subfields=[pymarc.Subfield("a", note)]))
    r.leader = r.leader[:9] + "a" + r.leader[10:]
    return r.as_marc()


def with_id(record, new_id, note):
    import pymarc

    r = next(pymarc.MARCReader(record, to_unicode=True, force_utf8=True))
    for f in r.get_fields("001"):
        r.remove_field(f)
    r.add_ordered_field(pymarc.Field(tag="001", data=new_id))
    r.add_field(pymarc.Field(tag="500", indicators=[" ", " "],
                             subfields=[pymarc.Subfield("a", note)]))
    r.leader = r.leader[:9] + "a" + r.leader[10:]
    return r.as_marc()


def oai_envelope():
    """Bytes of the OAI-PMH envelope in the fixtures: per response, and per record."""
    text = open(os.path.join(OAI, "ListRecords.xml"), encoding="utf-8").read()
    records = re.findall(r"<record>.*?</record>", text, re.S)
    metadata = sum(len(m.encode()) for m in re.findall(r"<metadata>.*?</metadata>", text, re.S))
    per_record = (sum(len(r.encode()) for r in records) - metadata) / max(1, len(records))
    per_response = len(text.encode()) - sum(len(r.encode()) for r in records)
    return per_response, per_record


def catchup_and_bootstrap(marc_file, work, runs):
    n = 100_000
    a, b, c = (os.path.join(work, x) for x in ("a", "b", "c"))
    consortium([a, b, c], ["BENCHA", "BENCHB", "BENCHC"])
    source = os.path.join(work, "a.mrc")
    records = marc_records(marc_file, 0, n)
    write_records(source, records)
    jalin(a, "import", source)
    a_id = own_id(a)
    node_a = Node(a)
    out = {}
    if "bootstrap" in runs or "catchup" in runs:
        # B: a first copy (its own bootstrap, not reported), for the catch-up.
        node_b = Node(b)
        jalin(b, "peers", "--dial", node_a.p2p)
        target = node_a.catalog(a_id)["digest"]
        wait("B's copy", lambda: (node_b.catalog(a_id) or {}).get("digest") == target)
        node_b.stop()
    if "catchup" in runs:
        # One record changed at A while B is away.
        one = os.path.join(work, "one.mrc")
        write_records(one, [edited(records[4242], "Catatan baru: satu perubahan.")])
        jalin(a, "import", one)
        target = node_a.catalog(a_id)["digest"]
        node_b = Node(b)
        start = time.time()
        jalin(b, "peers", "--dial", node_a.p2p)
        wait("B caught up", lambda: (node_b.catalog(a_id) or {}).get("digest") == target)
        took = time.time() - start
        time.sleep(1)
        t = node_b.sync()["traffic"]
        node_b.stop()
        # OAI-PMH for the same change, from the record's MARCXML and the envelope.
        per_response, per_record = oai_envelope()
        xml_one = os.path.join(work, "one.xml")
        jalin(a, "convert", "--to", "marcxml", one, xml_one)
        xml_all = os.path.join(work, "all.xml")
        jalin(a, "convert", "--to", "marcxml", source, xml_all)
        one_bytes = os.path.getsize(xml_one)
        all_bytes = os.path.getsize(xml_all)
        pages = (n + 99) // 100
        out["catchup"] = {
            "sync_bytes": t["bytes_sent"] + t["bytes_received"],
            "sync_bytes_sent": t["bytes_sent"],
            "sync_bytes_received": t["bytes_received"],
            "round_trips": t["requests_sent"] + t["requests_received"],
            "seconds": round(took, 2),
            "oai_incremental_bytes": int(per_response + per_record + one_bytes),
            "oai_full_bytes": int(pages * per_response + n * per_record + all_bytes),
        }
        print("catchup:", json.dumps(out["catchup"]), flush=True)
    if "bootstrap" in runs:
        node_c = Node(c)
        start = time.time()
        jalin(c, "peers", "--dial", node_a.p2p)
        target = node_a.catalog(a_id)["digest"]
        wait("C's bootstrap", lambda: (node_c.catalog(a_id) or {}).get("digest") == target,
             interval=0.2)
        took = time.time() - start
        searchable = time.time()
        wait("C's index", lambda: node_c.get("/api/status")["indexed"] >= n, interval=0.2)
        t = node_c.sync()["traffic"]
        out["bootstrap"] = {
            "records": n,
            "seconds_until_stored": round(took, 1),
            "seconds_until_searchable": round(time.time() - start, 1),
            "index_after_store_s": round(time.time() - searchable, 1),
            "bytes": t["bytes_sent"] + t["bytes_received"],
            "round_trips": t["requests_sent"] + t["requests_received"],
            "peak_rss_mb": round(node_c.rss_peak_mb()),
        }
        print("bootstrap:", json.dumps(out["bootstrap"]), flush=True)
        node_c.stop()
    node_a.stop()
    return out


def propagation(marc_file, work, edits=20, mesh=False):
    k = 10
    dirs = [os.path.join(work, f"p{i}") for i in range(k)]
    consortium(dirs, [f"PROP{i}" for i in range(k)])
    for i, d in enumerate(dirs):
        path = os.path.join(work, f"p{i}.mrc")
        write_records(path, marc_records(marc_file, 100_000 + i * 1000, 1000))
        jalin(d, "import", path)
    nodes = [Node(d) for d in dirs]
    for i in range(1, k):
        # A chain (each node knows only the one before it: 9 hops end to end), or every
        # member connected to every other, as members who know each other's addresses are.
        for j in (range(i) if mesh else [i - 1]):
            jalin(dirs[i], "peers", "--dial", nodes[j].p2p)
    ids = [own_id(d) for d in dirs]
    for node in nodes:
        for lid in ids:
            wait("the ten catalogs everywhere",
                 lambda: (node.catalog(lid) or {}).get("records", 0) >= 1000, interval=0.2)
    base = marc_records(marc_file, 200_000, edits)
    times = []
    local = []
    for e in range(edits):
        word = f"propagasi{e}x{int(time.time())}"
        one = os.path.join(work, "edit.mrc")
        write_records(one, [with_id(base[e], f"prop-{e}-{word}", word)])
        start = time.time()
        jalin(dirs[0], "import", one)
        pending = set(range(k))
        while pending:
            for i in list(pending):
                if nodes[i].found(word) > 0:
                    pending.discard(i)
                    if i == 0:
                        local.append(time.time() - start)
            if time.time() - start > 120:
                raise SystemExit("an edit never reached every node")
        times.append(time.time() - start)
    for node in nodes:
        node.stop()
    times.sort()
    local.sort()
    out = {
        # Baseline in the same run: the edit searchable on the node where it was made
        # (the import command's start, store, index).
        "local_p50_ms": round(statistics.median(local) * 1000),
        "nodes": k,
        "topology": "every member connected to every other" if mesh else "a chain of 10",
        "edits": edits,
        "p50_ms": round(statistics.median(times) * 1000),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1000),
        "max_ms": round(times[-1] * 1000),
    }
    print("propagation:", json.dumps(out), flush=True)
    return out


def memory(marc_file, work):
    k, per = 10, 25_000
    dirs = [os.path.join(work, f"m{i}") for i in range(k)] + [os.path.join(work, "observer")]
    consortium(dirs, [f"MEM{i}" for i in range(k)] + ["OBSERVER"])
    for i in range(k):
        path = os.path.join(work, f"m{i}.mrc")
        write_records(path, marc_records(marc_file, i * per, per))
        jalin(dirs[i], "import", path)
        os.remove(path)
    owners = [Node(d) for d in dirs[:k]]
    observer = Node(dirs[k])
    start = time.time()
    for o in owners:
        jalin(dirs[k], "peers", "--dial", o.p2p)
    ids = [own_id(d) for d in dirs[:k]]
    for o, lid in zip(owners, ids):
        target = o.catalog(lid)["digest"]
        wait("every catalog at the observer",
             lambda: (observer.catalog(lid) or {}).get("digest") == target, interval=0.5)
    wait("the observer's index",
         lambda: observer.get("/api/status")["indexed"] >= k * per, interval=0.5)
    took = time.time() - start
    peak = observer.rss_peak_mb()
    observer.stop()
    for o in owners:
        o.stop()
    # Restarted alone: what holding the union catalog costs at rest, after a search.
    observer = Node(dirs[k])
    observer.found("history")
    rss = observer.rss_mb()
    observer.stop()
    size = sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(dirs[k])
        for f in files
    )
    out = {
        "libraries": k,
        "records_each": per,
        "sync_seconds": round(took, 1),
        "peak_rss_during_sync_mb": round(peak),
        "rss_after_restart_and_search_mb": round(rss),
        "data_dir_mb": round(size / 1e6),
    }
    print("memory:", json.dumps(out), flush=True)
    return out


def main():
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    marc_file = args[0]
    runs = [args[i + 1] for i, a in enumerate(args) if a == "--only"] or [
        "catchup", "bootstrap", "propagation", "propagation-mesh", "memory"]
    work = tempfile.mkdtemp(prefix="jalin-bench-net-")
    try:
        results = {}
        if "catchup" in runs or "bootstrap" in runs:
            results.update(catchup_and_bootstrap(marc_file, os.path.join(work, "cb"), runs))
        if "propagation" in runs:
            os.makedirs(os.path.join(work, "prop"))
            results["propagation"] = propagation(marc_file, os.path.join(work, "prop"))
        if "propagation-mesh" in runs:
            os.makedirs(os.path.join(work, "mesh"))
            results["propagation_mesh"] = propagation(
                marc_file, os.path.join(work, "mesh"), mesh=True)
        if "memory" in runs:
            os.makedirs(os.path.join(work, "mem"))
            results["memory"] = memory(marc_file, os.path.join(work, "mem"))
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
