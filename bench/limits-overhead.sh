#!/usr/bin/env bash
# Requests per second through one node with 0, 10 and 1,000 budget rules that all match every
# request (calendar-day budgets split by a metadata key: the worst case), and with 1,000
# per-team rules of which each request matches one (`only: {metadata.team: tN}`: the common case
# of many rules, found by the rule index in one lookup). Issue 5's figure.
#   bench/limits-overhead.sh [seconds] [connections]
SECS="${1:-10}"; CONNS="${2:-32}"
MOCK_PORT=19990 . "$(dirname "$0")/common.sh"
port=19993
CASES="0 10 1000 1000f"
for n in $CASES; do
  {
    echo "node: {name: bench-$n, listen: \"127.0.0.1:$port\", data_dir: \"$WORK/data-$n\"}"
    echo 'providers: {openai: {base_url: "http://127.0.0.1:19990/v1"}}'
    echo "gateways:"
    echo "  - id: default"
    echo "    collect_log: false"
    if [ "$n" = 1000f ]; then
      echo "    budgets:"
      for i in $(seq 1 1000); do
        echo "      - {id: b$i, usd: 1000000, scope: {only: {metadata.team: t$i}}, window: {calendar: day, timezone: Europe/Berlin}}"
      done
    elif [ "$n" -gt 0 ]; then
      echo "    budgets:"
      for i in $(seq 1 "$n"); do
        echo "      - {id: b$i, usd: 1000000, scope: {split_by: metadata.team}, window: {calendar: day, timezone: Europe/Berlin}}"
      done
    fi
  } > "$WORK/$n.yaml"
  "$BIN" serve --config "$WORK/$n.yaml" --log-level error >/dev/null &
  PIDS+=($!)
  port=$((port + 1))
done
sleep 2
cat > "$WORK/chat.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["x-gatemesh-metadata"] = '{"team":"t500"}'
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark in a few words"}],"max_tokens":16}'
LUA
run() { wrk -t"$([ "$1" -ge 2 ] && echo 2 || echo 1)" -c"$1" -d"${SECS}s" -s "$WORK/chat.lua" "$2" | awk '/Requests\/sec/ {print $2} /Latency/ && !l {print $2; l=1}'; }
printf '%-24s %12s %12s\n' "rules ($CONNS conns)" "req/s" "avg latency"
port=19993
for n in $CASES; do
  url="http://127.0.0.1:$port/openai/chat/completions"
  run 4 "$url" >/dev/null
  out=$(run "$CONNS" "$url")
  label="$n rules, all match"; [ "$n" = 0 ] && label="no rules"; [ "$n" = 1000f ] && label="1000 rules, 1 matches"
  printf '%-24s %12s %12s\n' "$label" "$(echo "$out" | sed -n 2p)" "$(echo "$out" | sed -n 1p)"
  port=$((port + 1))
done
