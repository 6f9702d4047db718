#!/usr/bin/env bash
# Requests per second through one node with the request log on and off (issue 3's figure).
# Uses the release build, the mock provider as upstream and Debian's wrk as the load generator.
#   bench/logging-overhead.sh [seconds] [connections]
SECS="${1:-10}"; CONNS="${2:-32}"
MOCK_PORT=19990 . "$(dirname "$0")/common.sh"
for mode in on off; do
  collect=$([ "$mode" = on ] && echo true || echo false)
  port=$([ "$mode" = on ] && echo 19991 || echo 19992)
  cat > "$WORK/$mode.yaml" <<YAML
node: {name: bench-$mode, listen: "127.0.0.1:$port", data_dir: "$WORK/data-$mode"}
providers: {openai: {base_url: "http://127.0.0.1:19990/v1"}}
gateways: [{id: default, collect_log: $collect}]
YAML
  "$BIN" serve --config "$WORK/$mode.yaml" --log-level error >/dev/null &
  PIDS+=($!)
done
sleep 1
run() { wrk -t"$([ "$1" -ge 2 ] && echo 2 || echo 1)" -c"$1" -d"${SECS}s" -s bench/chat.lua "$2" | awk '/Requests\/sec/ {print $2} /Latency/ && !l {print $2; l=1}'; }
printf '%-24s %12s %12s\n' "target ($CONNS conns)" "req/s" "avg latency"
for t in "direct mock|http://127.0.0.1:19990/v1/chat/completions" "node, log on|http://127.0.0.1:19991/openai/chat/completions" \
         "node, log off|http://127.0.0.1:19992/openai/chat/completions"; do
  name="${t%%|*}"; url="${t#*|}"
  run 4 "$url" >/dev/null  # warm up connections
  out=$(run "$CONNS" "$url")
  printf '%-24s %12s %12s\n' "$name" "$(echo "$out" | sed -n 2p)" "$(echo "$out" | sed -n 1p)"
done
