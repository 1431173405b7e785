#!/usr/bin/env python3
"""Peak RSS of an agent answering large fetches at once (docs/memory.md).

    bench/fetch-memory.py BIN_DIR [--mib 160] [--fetches 16 64]

Starts BIN_DIR/floe-agent on a fresh local directory (default budgets,
compactor off), fills one partition with MIB MiB of 64 KiB records, then,
for each count N, sends N fetches at once, each asking for 64 MiB
(max_bytes=67108864) from one of two offsets, reads the answers whole, and
prints the agent's peak RSS (VmHWM) against the bound buffer + cache +
128 MiB. Loopback only; the agent is stopped at the end.
"""

import argparse
import json
import random
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise SystemExit(f"no {field} for {pid}")


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin_dir")
    ap.add_argument("--mib", type=int, default=160)
    ap.add_argument("--fetches", type=int, nargs="+", default=[16, 64])
    args = ap.parse_args()
    store = tempfile.mkdtemp(prefix="floe-fetch-memory-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    agent = subprocess.Popen(
        [f"{args.bin_dir}/floe-agent", "--listen", f"127.0.0.1:{port}", "--store", f"file://{store}", "--compactor", "off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        post(f"{base}/v1/topics", {"name": "big", "partitions": 1})
        rnd = random.Random(1)
        for _ in range(args.mib // 4):
            value = lambda: "".join(rnd.choices(string.ascii_letters, k=64 << 10))
            post(f"{base}/v1/topics/big/records", {"records": [{"value": value()} for _ in range(64)]})
        stats = json.load(urllib.request.urlopen(f"{base}/v1/stats"))["memory"]
        bound = stats["write_buffer"]["budget_bytes"] + stats["batch_cache"]["budget_bytes"]
        bound += stats["chunk_cache"]["budget_bytes"] + 128 * MIB
        print(f"filled {args.mib} MiB; peak RSS so far {status(agent.pid, 'VmHWM') / MIB:.0f} MiB; bound {bound / MIB:.0f} MiB")
        for n in args.fetches:
            sizes, errors = [], []

            def fetch(i):
                url = f"{base}/v1/topics/big/partitions/0/records?offset={(i % 2) * 1000}&max_records=10000&max_bytes={64 * MIB}"
                try:
                    with urllib.request.urlopen(url, timeout=300) as r:
                        sizes.append(len(r.read()))
                except OSError as e:
                    errors.append(e)

            started = time.monotonic()
            threads = [threading.Thread(target=fetch, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            took = time.monotonic() - started
            peak = status(agent.pid, "VmHWM")
            print(
                f"{n} fetches of 64 MiB: {sum(sizes) / MIB:.0f} MiB answered in {took:.1f} s, {len(errors)} failed; "
                f"peak RSS {peak / MIB:.0f} MiB = {peak / bound:.2f} of the bound"
            )
            if errors:
                sys.exit(f"fetches failed: {errors[:3]}")
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        subprocess.run(["rm", "-rf", store], check=False)


if __name__ == "__main__":
    main()
