#!/usr/bin/env python3
"""Measures the read path's object-store GETs (docs/read-path.md).

tail:    one agent, a producer at a steady rate and a long-polling tail
         consumer on the same agent for --seconds; reports segment GETs.
catchup: produces --mib of 1 KiB records through one agent, then a fresh
         agent (empty cache) reads every partition from offset 0; reports
         segment GETs against the number of batches it had to read.

startup: times a fresh agent on an existing bucket (--store, e.g. one made by
         `cargo run --release -p floe-compactor --example big_bucket -- DIR 1000000`)
         from process start to its first successful fetch.

Usage: scripts/read-path-figures.py tail|catchup|startup [--bin target/release/floe-agent]
"""
import argparse, json, os, subprocess, sys, tempfile, threading, time, urllib.request


def start(binary, store, *extra):
    env = dict(os.environ, FLOE_LOG="warn", FLOE_COMPACTOR="off")
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--store", store, *extra],
                         stdout=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline()
    assert line.startswith("floe-agent listening on "), line
    return p, line.split()[-1]


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=70) as r:
        return json.load(r)


def tail(args, store):
    agent, url = start(args.bin, store)
    call("POST", f"{url}/v1/topics", {"name": "tail", "partitions": 1})
    stop = time.time() + args.seconds
    consumed = [0]

    def consume():
        offset = 0
        while time.time() < stop:
            page = call("GET", f"{url}/v1/topics/tail/partitions/0/records?offset={offset}&timeout_ms=1000")
            consumed[0] += len(page["records"])
            offset = page["next_offset"]

    t = threading.Thread(target=consume)
    t.start()
    produced = 0
    while time.time() < stop:
        call("POST", f"{url}/v1/topics/tail/records", {"records": [{"value": "x" * 1024} for _ in range(10)]})
        produced += 10
        time.sleep(0.05)
    t.join()
    s = call("GET", f"{url}/v1/stats")
    agent.kill()
    print(json.dumps({"seconds": args.seconds, "produced": produced, "consumed": consumed[0],
                      "segment_gets": s["store"]["segments"]["get"], "segment_puts": s["store"]["segments"]["put"],
                      "cache_lookups": s["cache"]["lookups"], "cache_loads": s["cache"]["loads"]}))


def catchup(args, store):
    writer, url = start(args.bin, store, "--flush-bytes", str(8 << 20))
    call("POST", f"{url}/v1/topics", {"name": "big", "partitions": 4})
    record = "y" * 1000
    total = args.mib << 20
    sent, started = 0, time.time()
    while sent < total:
        call("POST", f"{url}/v1/topics/big/records", {"records": [{"value": record} for _ in range(2000)]})
        sent += 2000 * 1000
    meta = call("GET", f"{url}/v1/topics/big")
    writer.kill()
    reader, rurl = start(args.bin, store)
    read, t0 = 0, time.time()
    for p in range(4):
        offset = 0
        hw = meta["partitions"][p]["high_watermark"]
        while offset < hw:
            page = call("GET", f"{rurl}/v1/topics/big/partitions/{p}/records?offset={offset}&max_records=10000&max_bytes={16 << 20}")
            read += len(page["records"])
            offset = page["next_offset"]
    seconds = time.time() - t0
    s = call("GET", f"{rurl}/v1/stats")
    reader.kill()
    batches = sum(1 for _ in open_batches(store))
    print(json.dumps({"mib_written": args.mib, "records_read": read, "read_seconds": round(seconds, 1),
                      "segment_gets": s["store"]["segments"]["get"], "batches_in_log": batches,
                      "fetched_mib": round(s["cache"]["fetched_bytes"] / (1 << 20), 1)}))


def startup(args, _store):
    t0 = time.time()
    agent, url = start(args.bin, args.store)
    listening = time.time() - t0
    page = call("GET", f"{url}/v1/topics/big/partitions/3/records?offset=1000&max_records=1")
    first_fetch = time.time() - t0
    meta = call("GET", f"{url}/v1/topics/big")
    agent.kill()
    print(json.dumps({"listening_s": round(listening, 2), "first_fetch_s": round(first_fetch, 2),
                      "record": page["records"][0]["value"],
                      "records_in_topic": sum(p["high_watermark"] for p in meta["partitions"])}))


def open_batches(store):
    """Counts committed batches from the log entries on disk (local store only)."""
    log_dir = os.path.join(store.removeprefix("file://"), "log")
    for name in sorted(os.listdir(log_dir)):
        entry = json.load(open(os.path.join(log_dir, name)))
        for op in entry.get("ops", []):
            if op.get("op") == "append":
                yield from op["batches"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["tail", "catchup", "startup"])
    ap.add_argument("--store", help="startup: the bucket to open")
    ap.add_argument("--bin", default="target/release/floe-agent")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--mib", type=int, default=1024)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        {"tail": tail, "catchup": catchup, "startup": startup}[args.mode](args, f"file://{d}/store")
