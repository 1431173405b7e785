#!/usr/bin/env bash
# Issue 16's CPU figure: the agent's MiB per CPU-second as a ratio to the CPU
# floor, over RUNS pinned `floe-bench produce` runs (agent on CPU 0, the bench
# on CPU 1), one line per run and their mean. Every run counts: one that
# reports no ratio fails the series.
#
#   bench/cpu-ratio.sh BIN_DIR OUT_DIR [RUNS]     (default: 8 runs)
#
# Each run keeps its store in a new directory under OUT_DIR/runs, which is
# marked `chattr +T`: ext4 then spreads the directories made under it over
# its block groups, as it does top-level ones, so a run's files are not made
# beside the thousands the previous run deleted a minute before. On ext4
# without a journal each file created scans those (`recently_deleted`): 3.4%
# of the agent's CPU in a run right after another (docs/benchmarks.md,
# "2026-12-06 (sixth)"). Elsewhere the mark is refused or does nothing; the
# summary says when it was refused.
set -euo pipefail
BIN_DIR="${1:?bin dir}"
OUT="${2:?output dir}"
RUNS="${3:-8}"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "cpu-ratio: RUNS must be a whole number ≥ 1, not '$RUNS'" >&2; exit 2; }
# The measured configuration; the smoke test shortens it.
PRODUCERS="${FLOE_CPU_RATIO_PRODUCERS:-128}"
DURATION="${FLOE_CPU_RATIO_DURATION:-20}"
FLOOR_SECONDS="${FLOE_CPU_RATIO_FLOOR_SECONDS:-3}"
mkdir -p "$OUT/runs"
apart=yes
chattr +T "$OUT/runs" 2>/dev/null || apart=no
dir=""
trap '[ -n "$dir" ] && rm -rf "$dir"' EXIT
for i in $(seq 1 "$RUNS"); do
  dir=$(mktemp -d -p "$OUT/runs")
  if ! TMPDIR="$dir" taskset -c 1 "$BIN_DIR/floe-bench" produce --bin-dir "$BIN_DIR" --agent-cpus 0 \
    --producers "$PRODUCERS" --flush-interval-ms 50 --duration "$DURATION" --floor-seconds "$FLOOR_SECONDS" \
    --json "$OUT/run-$i.json" > "$OUT/run-$i.txt" 2>&1; then
    cat "$OUT/run-$i.txt" >&2
    exit 1
  fi
  rm -rf "$dir"
done
dir=""
python3 - "$OUT" "$RUNS" "$apart" <<'PY'
import json, os, sys
out, runs, apart = sys.argv[1], int(sys.argv[2]), sys.argv[3]
f = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
ratios = []
print("| run | agent MiB per CPU-s | CPU floor MiB/s (before / after) | ratio (≥ 0.6) | zstd share agent / floor |")
print("|---|---|---|---|---|")
for i in range(1, runs + 1):
    s = json.load(open(os.path.join(out, f"run-{i}.json")))
    r = s.get("agent_cpu_to_floor")
    if r is None:
        sys.exit(f"cpu-ratio: run {i} reported no ratio ({out}/run-{i}.txt)")
    ratios.append(r)
    floors = " / ".join(f(x, 1) for x in s.get("cpu_floor_runs_mib_s") or [])
    print(f"| {i} | {f(s.get('mib_s_per_agent_cpu_s'), 1)} | {floors} | {f(r)} | "
          f"{f(s.get('agent_compression_share'))} / {f(s.get('cpu_floor_compression_share'))} |")
print(f"\nratio: mean {sum(ratios) / len(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f} "
      f"({len(ratios)} runs, {sum(r < 0.6 for r in ratios)} below 0.6)")
if apart != "yes":
    print("stores not kept apart: chattr +T was refused here")
PY
