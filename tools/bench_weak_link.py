#!/usr/bin/env python3
"""Sync over a village's weak link (issue 18), with real `jalin start` processes.

Usage (root: it makes network namespaces):
    cargo build --release -p jalin-cli
    python3 tools/bench_weak_link.py MARC_FILE [--records 20000] [--changes 1000] [--seed 7]

A, the district library, holds the first RECORDS records of MARC_FILE. The baseline,
unbroken: C takes A's catalog on 127.0.0.1 (the bootstrap), then A corrects CHANGES
records and C takes them (the change set). The weak link: A runs in one network
namespace and B (the village) in another, each joined to this one by a veth pair whose
two ends send at most 64 kbit/s (`tc tbf`); B reaches A only through a proxy here that
adds 300 ms each way and cuts the connection after a random 0.5-2 MB (seeded). B takes
A's catalog (the bootstrap, which holds the first change set too), then A corrects
CHANGES more records and B takes them; C takes the same second set on 127.0.0.1 for the
baseline. Printed: time, the sync protocol's bytes received (as B's and C's nodes count
them) and the ratio to the baseline, cuts, and the progress B's `sync status` showed.
"""
import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_network as bn  # noqa: E402

TAG = str(os.getpid() % 10_000)
NET = 100 + os.getpid() % 50  # the tests take 10.200 to 10.249
NS_A, NS_B = f"jwa{TAG}", f"jwb{TAG}"


def sh(*args):
    subprocess.run(args, check=True)


def shaped(ns, link, net):
    outside = f"{link}r"
    tbf = ["root", "tbf", "rate", "64kbit", "burst", "4kb", "latency", "2000ms"]
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", link, "type", "veth", "peer", "name", outside)
    sh("ip", "link", "set", link, "netns", ns)
    sh("ip", "addr", "add", f"{net}.254/24", "dev", outside)
    sh("ip", "link", "set", outside, "up")
    sh("ip", "-n", ns, "addr", "add", f"{net}.1/24", "dev", link)
    sh("ip", "-n", ns, "link", "set", link, "up")
    sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("tc", "qdisc", "add", "dev", outside, *tbf)
    sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", link, *tbf)


def cleanup():
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


class NsNode(bn.Node):
    """A node in a network namespace (its HTTP API read through `ip netns exec`)."""

    def __init__(self, data, ns, p2p_ip):
        self.data = data
        self.ns = ns
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, bn.JALIN, "--data-dir", data, "start",
             "--listen", "127.0.0.1:0", "--p2p-listen", f"/ip4/{p2p_ip}/tcp/0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        bn.RUNNING.append(self.proc)
        self.p2p = None
        for line in self.proc.stdout:
            if line.strip().startswith("p2p: "):
                self.p2p = line.strip()[5:]
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def sync(self):
        out = subprocess.run(
            ["ip", "netns", "exec", self.ns, bn.JALIN, "--data-dir", self.data,
             "sync", "status", "--json"], capture_output=True, text=True,
        ).stdout
        return json.loads(out)

    def jalin(self, *args):
        subprocess.run(["ip", "netns", "exec", self.ns, bn.JALIN, "--data-dir", self.data,
                        *args], check=True, capture_output=True)


class Proxy:
    """127.0.0.1-free proxy from `listen` to `to`: 300 ms each way, cut after a random
    0.5-2 MB per connection."""

    def __init__(self, listen_ip, to, seed):
        self.to = to
        self.rng = random.Random(seed)
        self.cuts = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self.handle, listen_ip, 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait()

    async def handle(self, reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection(*self.to)
        except OSError:
            writer.close()
            return
        budget = [self.rng.randint(500_000, 2_000_000)]

        async def line(src, dst):
            queue = asyncio.Queue()

            async def read():
                while True:
                    data = await src.read(16384)
                    await queue.put((time.monotonic() + 0.3, data))
                    if not data:
                        return

            async def write():
                while True:
                    due, data = await queue.get()
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    if not data:
                        return
                    dst.write(data)
                    await dst.drain()
                    budget[0] -= len(data)
                    if budget[0] <= 0:
                        return

            r = asyncio.ensure_future(read())
            try:
                await write()
            finally:
                r.cancel()

        one = asyncio.ensure_future(line(reader, up_w))
        other = asyncio.ensure_future(line(up_r, writer))
        await asyncio.wait([one, other], return_when=asyncio.FIRST_COMPLETED)
        if budget[0] <= 0:
            self.cuts += 1
        for t in (one, other):
            t.cancel()
        for w in (writer, up_w):
            w.close()


def edits(marc_file, count, skip, note):
    return [bn.edited(r, note) for r in bn.marc_records(marc_file, skip, count)]


def received(node):
    return node.sync()["traffic"]["bytes_received"]


def wait_same(node, owner_id, target, what, progress=None, seconds=7200):
    start = time.time()
    last = 0.0
    while True:
        c = next((c for c in node.sync()["catalogs"] if c["library_id"] == owner_id), None)
        if c and c["digest"] == target:
            return time.time() - start
        if progress is not None and c and time.time() - last > 60 and c.get("to_go"):
            last = time.time()
            progress.append({"after_s": round(time.time() - start), "to_go": c["to_go"],
                             "kb_to_go": c["bytes_to_go"] // 1024, "eta_s": c.get("eta_s")})
            print("  progress:", json.dumps(progress[-1]), flush=True)
        if time.time() - start > seconds:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("marc_file")
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--changes", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="jalin-weak-")
    a, b, c = (os.path.join(work, x) for x in ("a", "b", "c"))
    bn.consortium([a, b, c], ["PERPUSDA", "PERPUSDESA", "PEMBANDING"])
    src = os.path.join(work, "a.mrc")
    bn.write_records(src, bn.marc_records(args.marc_file, 0, args.records))
    bn.jalin(a, "import", src)
    a_id = bn.own_id(a)
    first = os.path.join(work, "first.mrc")
    bn.write_records(first, edits(args.marc_file, args.changes, 0, "Koreksi pertama"))
    second = os.path.join(work, "second.mrc")
    bn.write_records(second, edits(args.marc_file, args.changes, args.changes, "Koreksi kedua"))

    # The baseline, on 127.0.0.1, unbroken.
    node_a = bn.Node(a)
    node_c = bn.Node(c)
    bn.jalin(c, "peers", "--dial", node_a.p2p)
    target = node_a.catalog(a_id)["digest"]
    t = wait_same(node_c, a_id, target, "C's bootstrap")
    c_boot = received(node_c)
    print("loopback bootstrap:", json.dumps({"records": args.records, "seconds": round(t, 1),
                                             "bytes": c_boot}), flush=True)
    bn.jalin(a, "import", first)
    target = node_a.catalog(a_id)["digest"]
    t = wait_same(node_c, a_id, target, "C's first change set")
    c_first = received(node_c) - c_boot
    print("loopback change set:", json.dumps({"records": args.changes, "seconds": round(t, 1),
                                              "bytes": c_first}), flush=True)
    node_c.stop()
    node_a.stop()

    # The weak link.
    cleanup()
    try:
        shaped(NS_A, NS_A, f"10.{NET}.2")
        shaped(NS_B, NS_B, f"10.{NET}.1")
        node_a = NsNode(a, NS_A, f"10.{NET}.2.1")
        node_b = NsNode(b, NS_B, f"10.{NET}.1.1")
        a_port = int(node_a.p2p.split("/")[4])
        a_peer = node_a.p2p.rsplit("/", 1)[1]
        proxy = Proxy(f"10.{NET}.1.254", (f"10.{NET}.2.1", a_port), args.seed)
        node_b.jalin("peers", "--dial", f"/ip4/10.{NET}.1.254/tcp/{proxy.port}/p2p/{a_peer}")
        target = node_a.sync()
        target = next(x for x in target["catalogs"] if x["library_id"] == a_id)["digest"]
        progress = []
        t = wait_same(node_b, a_id, target, "B's bootstrap", progress)
        b_boot = received(node_b)
        baseline = c_boot + c_first
        print("weak bootstrap:", json.dumps({
            "records": args.records, "seconds": round(t, 1), "bytes": b_boot,
            "baseline_bytes": baseline, "ratio": round(b_boot / baseline, 3),
            "cuts": proxy.cuts, "progress_samples": len(progress)}), flush=True)
        cuts_before = proxy.cuts
        node_a.jalin("import", second)
        target = next(x for x in node_a.sync()["catalogs"] if x["library_id"] == a_id)["digest"]
        t = wait_same(node_b, a_id, target, "B's change set")
        b_second = received(node_b) - b_boot
        weak_second = {"records": args.changes, "seconds": round(t, 1), "bytes": b_second,
                       "cuts": proxy.cuts - cuts_before}
        node_b.stop()
        node_a.stop()
    finally:
        cleanup()

    # The same second change set, unbroken, for the ratio.
    node_a = bn.Node(a)
    node_c = bn.Node(c)
    before = 0
    bn.jalin(c, "peers", "--dial", node_a.p2p)
    t = wait_same(node_c, a_id, target, "C's second change set")
    c_second = received(node_c) - before
    node_c.stop()
    node_a.stop()
    weak_second["baseline_bytes"] = c_second
    weak_second["ratio"] = round(b_second / max(1, c_second), 3)
    print("weak change set:", json.dumps(weak_second), flush=True)


if __name__ == "__main__":
    main()
