#!/usr/bin/env python3
"""The old PC's case (issue 19), measured with real `jalin` processes on 127.0.0.1.

Usage: cargo build --release -p jalin-cli && python3 tools/bench_old_pc.py [MARC_FILE] [MEMORY_MB]
MARC_FILE: the records the five catalogs are made of (default: the 10,000 LC records of
../shared/data). MEMORY_MB: `[limits] memory_mb` of the library's node (default: what
`jalin init` writes). JALIN_BIN: another build; KEEP=1 keeps the data dirs; A_WRAP: a
profiler A's node runs under while it takes the catalogs (then the bench ends there);
TEMPLATE=DIR keeps a copy of the data dirs before the sync, SYNCED=DIR one after it;
REUSE=DIR starts from either (no import measured; from a SYNCED copy, no sync either);
SERIES=1 prints each phase's anonymous memory every 5 s.

A library (A) and four partners, one consortium under an agreement every member signed
(with an evaluation period, so the evaluation report has one), 50,000 records each, made with pymarc
from MARC_FILE's records as 25 variants of each (a variant: its own 001, a word added to
the main title, no ISBN, LCCN or OCLC number, so each is a book of its own). A holds
variants 0-4; P1 0, 1 and 5-7; P2 2, 3 and 8-10; P3 4 and 11-14; P4 15-19: each of the
first three shares 10,000-20,000 books with A, as libraries of one region do, P4 none.
Peak RSS of A's process for each operation, each on its own (the node's VmHWM is reset
with /proc/PID/clear_refs before each; the import is a process of its own):

1. import: `jalin import` of the 50,000 records into A;
2. four catalogs at once: A's node started, the four partners' nodes dialled at once,
   until A holds all four catalogs (their digests) and has indexed all 250,000 records;
3. search (A's node restarted first, so that this and what follows are measured on their
   own, not beside what the sync left resident): 50 searches (`/api/search`) and 50 SRU
   searchRetrieve requests;
4. OAI-PMH: a full ListRecords harvest of A's union catalog (every page);
5. reports, each on its own: the collection overlap, the conspectus, the needs report
   and the evaluation report (the API's JSON, as the librarian's pages ask for them).

Then `jalin status` of the running node (what each part of the budget holds).
"""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_hostile import rss_parts, rss_peak  # noqa: E402
from bench_network import JALIN, ROOT, Node, consortium, jalin, own_id, wait  # noqa: E402

QUERIES = ["history", "indonesia", "java", "islam", "law", "music", "children",
           "economics", "poetry", "war", "education", "language", "religion", "art",
           "science", "women", "politics", "health", "water", "culture"]


class Sampler:
    """The most anonymous (heap, stacks) and file-backed (the index's mapped files, which
    the kernel may drop under pressure) resident memory of a process, sampled every
    50 ms, since the last `reset`."""

    def __init__(self, pid):
        self.pid, self.anon, self.file, self.threads = pid, 0.0, 0.0, 0
        self.series, self.started = [], time.time()
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                anon, file = rss_parts(self.pid)
                threads = len(os.listdir(f"/proc/{self.pid}/task"))
            except OSError:
                return
            with self.lock:
                self.anon, self.file = max(self.anon, anon), max(self.file, file)
                self.threads = max(self.threads, threads)
                if not self.series or time.time() - self.series[-1][0] >= 5:
                    self.series.append((time.time(), anon))
            time.sleep(0.05)

    def reset(self):
        with self.lock:
            clear_peak(self.pid)
            self.anon, self.file, self.threads = 0.0, 0.0, 0
            self.series, self.started = [], time.time()

    def note(self, out, name):
        out[f"{name}_peak_mb"] = round(rss_peak(self.pid))
        out[f"{name}_anon_max_mb"] = round(self.anon)
        out[f"{name}_file_max_mb"] = round(self.file)
        out[f"{name}_threads_max"] = self.threads
        if os.environ.get("SERIES"):
            print(f"{name}: anonymous MB every 5 s:",
                  " ".join(f"{t - self.started:.0f}s:{a:.0f}" for t, a in self.series),
                  flush=True)


def clear_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")


def token(data):
    with open(os.path.join(data, "api-token")) as fh:
        return fh.read().strip()


def call(node, path, body=None, bearer=None, timeout=600):
    request = urllib.request.Request(node.url + path, data=body)
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return r.read()


def set_memory(data, memory_mb):
    path = os.path.join(data, "config.toml")
    with open(path) as fh:
        text = fh.read()
    text = re.sub(r"memory_mb = \d+", f"memory_mb = {memory_mb}", text)
    with open(path, "w") as fh:
        fh.write(text)


VARIANTS = {"DESA": [0, 1, 2, 3, 4], "P1": [0, 1, 5, 6, 7], "P2": [2, 3, 8, 9, 10],
            "P3": [4, 11, 12, 13, 14], "P4": [15, 16, 17, 18, 19]}


def catalog_file(source, variants, path):
    """The records of `source` once per variant, each a book of its own (see above)."""
    import pymarc

    with open(source, "rb") as fh:
        originals = [r for r in pymarc.MARCReader(fh, to_unicode=True, force_utf8=True)
                     if r is not None]
    with open(path, "wb") as out:
        for v in variants:
            for r in originals:
                # Each field copied: a field shared with the original would carry one
                # variant's title into the next.
                r = pymarc.Record(leader=r.leader, fields=copy.deepcopy(r.fields),
                                  force_utf8=True)
                old = r.get_fields("001")
                base = old[0].data.strip() if old else str(id(r))
                for f in r.get_fields("001", "010", "020", "035"):
                    r.remove_field(f)
                r.add_ordered_field(pymarc.Field(tag="001", data=f"v{v}-{base}"))
                # First in the title: the title key keeps its first words.
                for f in r.get_fields("245"):
                    if f.get("a"):
                        f["a"] = f"varian{v} {f['a']}"
                r.leader = r.leader[:9] + "a" + r.leader[10:]
                out.write(r.as_marc())


def originals(path):
    import pymarc

    with open(path, "rb") as fh:
        return sum(1 for r in pymarc.MARCReader(fh, to_unicode=True, force_utf8=True)
                   if r is not None)


AGREEMENT = """+++
title = "Perjanjian Kerja Sama Bench"
interlibrary_loan = true
staff_development = true
evaluation_period_months = 6
+++
Perpustakaan anggota berbagi katalog dan meminjamkan koleksi.
"""


def agree(work, dirs):
    """Every member signs one agreement (documents carried by file, offline)."""
    text = os.path.join(work, "perjanjian.md")
    with open(text, "w") as fh:
        fh.write(AGREEMENT)
    jalin(dirs[0], "agreement", "draft", text)
    jalin(dirs[0], "agreement", "sign")
    docs = os.path.join(work, "docs.txt")
    jalin(dirs[0], "consortium", "export", docs)
    for d in dirs[1:]:
        jalin(d, "consortium", "import", docs)
        jalin(d, "agreement", "sign")
        signed = os.path.join(work, "signed.txt")
        jalin(d, "consortium", "export", signed)
        jalin(dirs[0], "consortium", "import", signed)
    jalin(dirs[0], "consortium", "export", docs)
    for d in dirs[1:]:
        jalin(d, "consortium", "import", docs)
    shown = jalin(dirs[0], "agreement", "show")
    if "in force" not in shown.lower() and "berlaku" not in shown.lower():
        raise SystemExit(f"the bench's agreement is not in force:\n{shown}")
    open(os.path.join(work, "agreed"), "w").close()


def import_catalogs(work, dirs, names, files, timing, out):
    """A's import measured (a process of its own), then the partners' imports. TEMPLATE:
    a copy of the data dirs made then, for REUSE (a later run starts from it, at 2)."""
    start = time.time()
    subprocess.run(["/usr/bin/time", "-o", timing, "-f", "%M", JALIN, "--data-dir",
                    dirs[0], "import", files["DESA"]], check=True, capture_output=True)
    out["import_s"] = round(time.time() - start, 1)
    out["import_peak_mb"] = round(int(open(timing).read().split()[-1]) / 1024)
    for d, name in zip(dirs[1:], names[1:]):
        jalin(d, "import", files[name])
    if os.environ.get("TEMPLATE"):
        shutil.copytree(work, os.environ["TEMPLATE"])


def main():
    default = os.path.join(ROOT, "..", "shared", "data", "marc", "loc", "loc-books-10k.mrc")
    marc = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else default)
    memory_mb = sys.argv[2] if len(sys.argv) > 2 else None
    work = tempfile.mkdtemp(prefix="jalin-old-pc-")
    try:
        names = ["DESA", "P1", "P2", "P3", "P4"]
        dirs = [os.path.join(work, n) for n in names]
        files = {}
        out = {}
        reuse = os.environ.get("REUSE")
        if reuse:
            shutil.rmtree(work)
            shutil.copytree(reuse, work)
            if not os.path.exists(os.path.join(work, "agreed")):
                agree(work, dirs)
        else:
            for name in names:
                files[name] = os.path.join(work, f"{name}.mrc")
                catalog_file(marc, VARIANTS[name], files[name])
            consortium(dirs, names)
            agree(work, dirs)
        if memory_mb:
            set_memory(dirs[0], memory_mb)
        # 1. The import, a process of its own.
        timing = os.path.join(work, "time")
        if not reuse:
            import_catalogs(work, dirs, names, files, timing, out)
        synced = bool(reuse) and os.path.exists(os.path.join(reuse, "synced"))
        if not synced:
            sync_catalogs(work, dirs, names, marc, out)
        reports(dirs, out)
    finally:
        if os.environ.get("KEEP"):
            print("kept:", work, flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)


def sync_catalogs(work, dirs, names, marc, out):
    """2. Four catalogs at once (SYNCED: a copy of the data dirs after it)."""
    partners = [Node(d) for d in dirs[1:]]
    # A_WRAP: a command A's node runs under while it takes the catalogs (a profiler:
    # `A_WRAP="heaptrack -o /tmp/a"` with a build of `--features system-allocator`).
    a = Node(dirs[0], wrap=os.environ.get("A_WRAP", "").split())
    out["started_mb"] = round(a.rss_mb())
    sampler = Sampler(a.proc.pid)
    sampler.reset()
    start = time.time()
    for p in partners:
        jalin(dirs[0], "peers", "--dial", p.p2p)
    ids = [own_id(d) for d in dirs[1:]]
    for p, lid in zip(partners, ids):
        target = p.catalog(lid)["digest"]
        wait("every catalog at A",
             lambda: (a.catalog(lid) or {}).get("digest") == target, interval=1.0,
             seconds=3600)
    total = sum(len(VARIANTS[n]) for n in names) * originals(marc)
    wait("A's index", lambda: a.get("/api/status")["indexed"] >= total,
         interval=1.0, seconds=3600)
    out["four_catalogs_s"] = round(time.time() - start, 1)
    sampler.note(out, "four_catalogs")
    for p in partners:
        p.stop()
    a.stop()
    if os.environ.get("A_WRAP"):
        print("old pc:", json.dumps(out), flush=True)
        raise SystemExit(0)
    if os.environ.get("SYNCED"):
        shutil.copytree(work, os.environ["SYNCED"])
        open(os.path.join(os.environ["SYNCED"], "synced"), "w").close()


def reports(dirs, out):
    """3-5 on a node started afresh: what each costs on its own, not what the sync left
    resident."""
    a = Node(dirs[0])
    out["restarted_mb"] = round(a.rss_mb())
    sampler = Sampler(a.proc.pid)
    # 3. Search.
    sampler.reset()
    for i in range(50):
        q = urllib.parse.quote(QUERIES[i % len(QUERIES)])
        call(a, f"/api/search?q={q}&per_page=20&page={1 + i % 3}")
        call(a, "/sru?version=2.0&operation=searchRetrieve&maximumRecords=20"
                f"&query=dc.title%3D{q}")
    sampler.note(out, "search")
    # 4. A full OAI-PMH harvest.
    sampler.reset()
    path = "/oai?verb=ListRecords&metadataPrefix=marcxml"
    pages = records = 0
    while path:
        text = call(a, path).decode("utf-8")
        pages += 1
        records += text.count("<record>")
        found = re.search(r"<resumptionToken[^>]*>([^<]+)</resumptionToken>", text)
        path = (f"/oai?verb=ListRecords&resumptionToken={urllib.parse.quote(found.group(1))}"
                if found else None)
    out["oai_pages"], out["oai_records"] = pages, records
    sampler.note(out, "oai")
    # 5. Reports, each on its own.
    bearer = token(dirs[0])
    reports = {}
    for name, path, body in [
        ("overlap", "/api/collection/overlap", None),
        ("conspectus", "/api/collection/conspectus", b'{"action": "show"}'),
        ("needs", "/api/needs", b'{"action": "report"}'),
        ("evaluation", "/api/evaluation", b'{"action": "report"}'),
    ]:
        sampler.reset()
        start = time.time()
        try:
            reports[name] = len(call(a, path, body, bearer))
        except urllib.error.HTTPError as e:
            reports[name] = f"HTTP {e.code}: {e.read()[:200]!r}"
        out[f"report_{name}_s"] = round(time.time() - start, 1)
        sampler.note(out, f"report_{name}")
    out["reports"] = reports
    out["rss_now_mb"] = round(a.rss_mb())
    status = subprocess.run([JALIN, "--data-dir", dirs[0], "status"],
                            capture_output=True, text=True).stdout
    a.stop()
    print(status, flush=True)
    print("old pc:", json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
