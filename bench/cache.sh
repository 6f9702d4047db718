#!/usr/bin/env bash
# Cache hits against cache misses through one node (request log on, cache on), issue 4's figure:
# requests per second and latency at 1 and 32 connections. Misses send a different body every
# request (a counter in the prompt); hits send one body, cached by a warm-up request.
#   bench/cache.sh [seconds]
SECS="${1:-10}"
MOCK_PORT=19890 . "$(dirname "$0")/common.sh"
cat > "$WORK/node.yaml" <<YAML
node: {name: bench-cache, listen: "127.0.0.1:19891", data_dir: "$WORK/data"}
providers: {openai: {base_url: "http://127.0.0.1:19890/v1"}}
gateways:
  - id: default
    cache: {ttl: 3600}
YAML
"$BIN" serve --config "$WORK/node.yaml" --log-level error >/dev/null &
PIDS+=($!)
sleep 2
cat > "$WORK/hit.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark in a few words"}],"max_tokens":16}'
LUA
cat > "$WORK/miss.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  local body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello ' .. n .. ' ' .. math.random(1e9) .. '"}],"max_tokens":16}'
  return wrk.format("POST", nil, {["content-type"] = "application/json"}, body)
end
LUA
URL="http://127.0.0.1:19891/openai/chat/completions"
curl -s -o /dev/null -H 'content-type: application/json' -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the benchmark in a few words"}],"max_tokens":16}' "$URL"
run() { wrk -t"$([ "$1" -ge 2 ] && echo 2 || echo 1)" -c"$1" -d"${SECS}s" --latency -s "$WORK/$2.lua" "$URL" \
  | awk '/Requests\/sec/ {rps=$2} / 50%/ {p50=$2} / 99%/ {p99=$2} END {printf "%10s %10s %10s", rps, p50, p99}'; }
printf '%-22s %10s %10s %10s\n' "case" "req/s" "p50" "p99"
for conns in 1 32; do
  for kind in miss hit; do
    printf '%-22s %s\n' "$kind, $conns conn" "$(run "$conns" "$kind")"
  done
done
