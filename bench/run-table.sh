#!/usr/bin/env bash
# The figures of docs/benchmarks.md: `floe-bench all` at two flush intervals,
# two record sizes and the given store profiles, then a markdown table.
#
#   bench/run-table.sh BIN_DIR OUT_DIR [PROFILE...]     (default profiles: none s3-standard)
#
# STORE=s3://bucket/prefix (with the usual AWS_* variables) runs the agents
# and the floor on that store instead of a temporary directory; LABEL names
# its rows (e.g. LABEL=seaweedfs STORE=s3://floe-test/bench … none).
set -euo pipefail
BIN_DIR="${1:?bin dir}"
OUT="${2:?output dir}"
shift 2
if [ $# -gt 0 ]; then PROFILES=("$@"); else PROFILES=(none s3-standard); fi
DURATION="${DURATION:-10}"
PRODUCERS="${PRODUCERS:-32}"
mkdir -p "$OUT"
for profile in "${PROFILES[@]}"; do
  for flush in 50 250; do
    # Same bytes per request (100 KiB) for both record sizes.
    for rec in "100 1000" "1024 100"; do
      set -- $rec
      name="${LABEL:-$profile}-${flush}ms-$1B"
      echo "== $name" >&2
      "$BIN_DIR/floe-bench" all --bin-dir "$BIN_DIR" --store-profile "$profile" --flush-interval-ms "$flush" \
        --record-bytes "$1" --records-per-request "$2" --producers "$PRODUCERS" --partitions 8 \
        --duration "$DURATION" --floor-seconds 2 --e2e-rate 20 \
        ${STORE:+--store "$STORE/$name"} \
        --json "$OUT/$name.json" --svg "$OUT/$name.svg" > "$OUT/$name.txt"
    done
  done
done
python3 - "$OUT" <<'PY'
import glob, json, os, sys
rows = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    s = json.load(open(path))
    s["label"] = os.path.basename(path)[: -len(".json")].rsplit("-", 2)[0]
    rows.append(s)
order = {"none": 0, "s3-express": 1, "s3-standard": 2}
rows.sort(key=lambda s: (order.get(s["store_profile"], 9), s["flush_interval_ms"], s["record_bytes"]))
f = lambda v, d=1: "–" if v is None else f"{v:,.{d}f}"
print("| profile | flush | record | produce MiB/s | floor PUT MiB/s (8 MiB) | ratio (≥ 0.9) | p50 / p99 ms | p99 budget ms | p99 / budget (≤ 1) | e2e p50 / p99 ms | MiB per agent CPU-s (≥ 60) | PUTs per GiB written (≤ 140) | mean segment KiB | $ per GiB written | GETs per GiB read (cold) | tail segment GETs per GiB (0) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for s in rows:
    p = s.get("produce") or {}
    ratio_lat = s["produce_p99_ms"] / s["p99_budget_ms"] if s.get("p99_budget_ms") else None
    print(f"| {s['label']} | {s['flush_interval_ms']} ms | {s['record_bytes']} B | {f(s['produce_mib_s'])} | {f(s['floor_put_mib_s'])} | {f(s['produce_to_floor'], 3)} | "
          f"{f(s['produce_p50_ms'])} / {f(s['produce_p99_ms'])} | {f(s['p99_budget_ms'])} | {f(ratio_lat, 2)} | {f(s['e2e_p50_ms'])} / {f(s['e2e_p99_ms'])} | "
          f"{f(s['mib_s_per_agent_cpu_s'])} | {f(s['put_per_gib'], 0)} | {f(p.get('mean_segment_bytes', 0) / 1024, 0)} | {f(s['dollars_per_gib_written'], 4)} | {f(s['get_per_gib'], 0)} | {f(s['tail_get_per_gib'], 0)} |")
PY
