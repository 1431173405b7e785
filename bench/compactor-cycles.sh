#!/usr/bin/env bash
# Runs `floe-compactor --once` on a local-directory bucket until a cycle
# merges nothing; prints a line per cycle: merged runs, merged batches,
# failed runs, segment GETs and the bytes they read ("-" for a build that
# does not report them: one GET per merged batch), and the cycle's peak RSS
# in MiB. The compactor's own log goes to STORE_DIR.compactor.log.
#
#   bench/compactor-cycles.sh FLOE_COMPACTOR STORE_DIR
set -euo pipefail
compactor="${1:?floe-compactor binary}"
store="${2:?bucket directory}"
rss=$(mktemp)
trap 'rm -f "$rss"' EXIT
for _ in $(seq 1 64); do
  line=$(/usr/bin/time -f "%M" -o "$rss" "$compactor" --once --store "file://$store" 2>>"$store.compactor.log" | tail -n 1)
  merged=$(python3 - "$line" "$(cat "$rss")" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
s = r.get("segment_requests", {})
print(r["merged_runs"], r["merged_batches"], r["failed_runs"], s.get("get", "-"), s.get("get_bytes", "-"), int(sys.argv[2]) // 1024, file=sys.stderr)
print(r["merged_runs"])
PY
)
  [ "$merged" = 0 ] && exit 0
done
echo "still merging after 64 cycles" >&2
exit 1
