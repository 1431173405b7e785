#!/usr/bin/env bash
# CI smoke of every floe-bench scenario: a few seconds each against the debug
# binaries. No timing assertions: it fails only if a scenario errors (floe-bench
# exits non-zero when a scenario produced, consumed or stored nothing) or its
# JSON reports zero throughput.
#
#   cargo build -p floe-agent -p floe-compactor -p floe-bench && bench/smoke.sh [BIN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR="${1:-${CARGO_TARGET_DIR:-target}/debug}"
BENCH="$BIN_DIR/floe-bench"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
SHORT=(--bin-dir "$BIN_DIR" --duration 3 --producers 2 --records-per-request 10 --partitions 2
       --flush-interval-ms 50 --floor-seconds 1 --floor-bytes 65536)

positive() { # FILE FIELD: the field must be a number > 0
  python3 - "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[1])).get(sys.argv[2])
if not isinstance(v, (int, float)) or v <= 0:
    sys.exit(f"smoke: {sys.argv[2]} = {v!r} in {sys.argv[1]}")
PY
}

"$BENCH" floor "${SHORT[@]}" --json "$OUT/floor.json"
positive "$OUT/floor.json" floor_put_mib_s

"$BENCH" produce "${SHORT[@]}" --json "$OUT/produce.json" --svg "$OUT/produce.svg"
positive "$OUT/produce.json" produce_mib_s
positive "$OUT/produce.json" put_per_gib
grep -q '<polyline' "$OUT/produce.svg"

"$BENCH" produce "${SHORT[@]}" --rate 20 --keys uniform:100 --store-profile s3-express --json "$OUT/rate.json"
positive "$OUT/rate.json" produce_mib_s

"$BENCH" consume "${SHORT[@]}" --json "$OUT/consume.json"
positive "$OUT/consume.json" get_per_gib

# The catch-up read of a compacted bucket: the compactor must have merged.
"$BENCH" consume "${SHORT[@]}" --compact-first --json "$OUT/compacted.json"
positive "$OUT/compacted.json" get_per_gib
python3 - "$OUT/compacted.json" <<'PY'
import json, sys
c = (json.load(open(sys.argv[1])).get("consume") or {}).get("compaction") or {}
if not c.get("merged_batches"):
    sys.exit(f"smoke: --compact-first merged nothing: {c!r}")
# Its reads counted (floe-compactor --once's segment_requests), and never
# more GETs than batches merged (one GET per flush segment a group reads).
if not 0 < c.get("segment_gets", 0) <= c["merged_batches"]:
    sys.exit(f"smoke: --compact-first segment GETs not counted or more than its batches: {c!r}")
PY

"$BENCH" e2e "${SHORT[@]}" --rate 20 --json "$OUT/e2e.json"
positive "$OUT/e2e.json" e2e_p99_ms

"$BENCH" all "${SHORT[@]}" --e2e-rate 20 --json "$OUT/all.json"
for f in produce_mib_s produce_p50_ms produce_p99_ms e2e_p99_ms floor_put_mib_s agent_cpu_s_per_gib put_per_gib get_per_gib; do
  positive "$OUT/all.json" "$f"
done
# The CPU ratio's series script, one short run. It pins to CPUs 0 and 1.
if taskset -c 0,1 true 2>/dev/null; then
  FLOE_CPU_RATIO_PRODUCERS=2 FLOE_CPU_RATIO_DURATION=3 FLOE_CPU_RATIO_FLOOR_SECONDS=1 \
    bench/cpu-ratio.sh "$BIN_DIR" "$OUT/cpu-ratio" 1 > "$OUT/cpu-ratio.txt"
  positive "$OUT/cpu-ratio/run-1.json" agent_cpu_to_floor
  grep -q '^ratio: mean' "$OUT/cpu-ratio.txt"
else
  echo "smoke: CPUs 0 and 1 are not both available here; cpu-ratio.sh not run" >&2
fi
echo "floe-bench smoke: every scenario ran"
