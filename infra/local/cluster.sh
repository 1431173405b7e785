#!/usr/bin/env bash
# A local Floe cluster without Docker: N agents on loopback ports and one
# standalone compactor, all on one store.
#
#   infra/local/cluster.sh up       # start (builds release binaries if needed)
#   infra/local/cluster.sh up --s3  # the same on SeaweedFS, a real S3 server it starts too
#   infra/local/cluster.sh status   # what runs, and whether each agent is ready
#   infra/local/cluster.sh down     # stop everything it started
#
# Settings (environment):
#   FLOE_CLUSTER_AGENTS     number of agents (3)
#   FLOE_CLUSTER_BASE_PORT  agent i listens on BASE_PORT + i (18080 → 18081, 18082, …)
#   FLOE_CLUSTER_DIR        pid files and logs (.floe-cluster)
#   FLOE_STORE              the store (file://$FLOE_CLUSTER_DIR/data); s3:// works with the usual AWS_* variables
#   FLOE_BIN_DIR            where floe-agent and floe-compactor are (target/release, built when missing)
# Other FLOE_* variables (flush interval, compaction interval, …) pass through,
# except FLOE_LISTEN and FLOE_ADVERTISE_URL, which the script sets per agent.
set -euo pipefail
cd "$(dirname "$0")/../.."

agents=${FLOE_CLUSTER_AGENTS:-3}
base_port=${FLOE_CLUSTER_BASE_PORT:-18080}
dir=${FLOE_CLUSTER_DIR:-.floe-cluster}
bin=${FLOE_BIN_DIR:-target/release}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
store=${FLOE_STORE:-file://$dir/data}

# `up --s3`: SeaweedFS on free loopback ports (scripts/seaweedfs), stopped by
# `down` with everything else.
start_s3() {
  local endpoint
  endpoint=$(scripts/seaweedfs start "$dir/seaweedfs" floe)
  cp "$dir/seaweedfs/weed.pid" "$dir/seaweedfs.pid"
  echo "$endpoint" >"$dir/seaweedfs.url"
}

use_s3() {
  export AWS_ENDPOINT_URL AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=floe AWS_SECRET_ACCESS_KEY=floe
  AWS_ENDPOINT_URL=$(cat "$dir/seaweedfs.url")
  store=s3://floe/cluster
  echo "seaweedfs: $AWS_ENDPOINT_URL (bucket floe)"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

pidfiles() { ls "$dir"/*.pid 2>/dev/null || true; }

up() {
  if [ -n "$(pidfiles)" ]; then
    for f in $(pidfiles); do
      if alive "$f"; then echo "cluster already running ($f); run '$0 down' first" >&2; exit 1; fi
    done
    rm -f "$dir"/*.pid
  fi
  if [ "${1:-}" = --s3 ]; then
    start_s3
    use_s3
  fi
  if [ ! -x "$bin/floe-agent" ] || [ ! -x "$bin/floe-compactor" ]; then
    echo "==> building release binaries into $bin"
    cargo build --release -p floe-agent -p floe-compactor
    bin=target/release
  fi
  echo "==> store $store"
  # The first agent creates the cluster object; start it alone, then the rest.
  # Each agent advertises its own loopback URL to the others (group
  # coordinator, commit lease); set here so that a FLOE_ADVERTISE_URL in the
  # caller's environment cannot give every agent the same one.
  for i in $(seq 1 "$agents"); do
    port=$((base_port + i))
    FLOE_STORE=$store FLOE_COMPACTOR=off FLOE_LISTEN=127.0.0.1:$port FLOE_ADVERTISE_URL=http://127.0.0.1:$port \
      nohup "$bin/floe-agent" >"$dir/agent-$i.out" 2>"$dir/agent-$i.log" </dev/null &
    echo $! >"$dir/agent-$i.pid"
    wait_listening "$dir/agent-$i" "agent $i"
    echo "agent $i: $(sed -n 's/^floe-agent listening on //p' "$dir/agent-$i.out")"
  done
  FLOE_STORE=$store nohup "$bin/floe-compactor" >"$dir/compactor.out" 2>"$dir/compactor.log" </dev/null &
  echo $! >"$dir/compactor.pid"
  sleep 0.5
  alive "$dir/compactor.pid" || { echo "compactor exited; see $dir/compactor.log" >&2; down; exit 1; }
  echo "compactor: pid $(cat "$dir/compactor.pid")"
}

wait_listening() {
  local prefix=$1 name=$2
  for _ in $(seq 1 300); do
    grep -q '^floe-agent listening on ' "$prefix.out" 2>/dev/null && return 0
    if ! alive "$prefix.pid"; then
      echo "$name exited; see $prefix.log:" >&2
      tail -5 "$prefix.log" >&2 || true
      down
      exit 1
    fi
    sleep 0.1
  done
  echo "$name did not start within 30 s; see $prefix.log" >&2
  down
  exit 1
}

# wait_gone TENTHS FILE…: until none of the processes is alive, at most TENTHS × 0.1 s.
wait_gone() {
  local tenths=$1
  shift
  for _ in $(seq 1 "$tenths"); do
    local left=0
    for f in "$@"; do alive "$f" && left=1; done
    [ "$left" -eq 0 ] && return 0
    sleep 0.1
  done
}

down() {
  local files
  files=$(pidfiles)
  [ -z "$files" ] && { echo "cluster not running"; return 0; }
  for f in $files; do alive "$f" && kill -TERM "$(cat "$f")" 2>/dev/null || true; done
  wait_gone 100 $files
  for f in $files; do alive "$f" && kill -KILL "$(cat "$f")" 2>/dev/null || true; done
  wait_gone 50 $files
  rm -f $files "$dir/seaweedfs/weed.pid" "$dir/seaweedfs.url"
  echo "cluster stopped"
}

status() {
  local files running=0
  files=$(pidfiles)
  [ -z "$files" ] && { echo "cluster not running"; return 3; }
  for f in $files; do
    local name
    name=$(basename "$f" .pid)
    if alive "$f"; then
      running=$((running + 1))
      local url
      url=$(sed -n 's/^floe-agent listening on //p' "${f%.pid}.out" 2>/dev/null || true)
      if [ -n "$url" ]; then
        echo "$name: running (pid $(cat "$f")), $url/readyz → $(curl -s -m 3 "$url/readyz" || echo unreachable)"
      else
        echo "$name: running (pid $(cat "$f"))"
      fi
    else
      echo "$name: not running"
    fi
  done
  [ "$running" -gt 0 ]
}

case "${1:-}" in
  up) up "${2:-}" ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up [--s3]|down|status" >&2; exit 2 ;;
esac
