# Shared set-up of the benchmark scripts, sourced by them: the release build, wrk, a scratch
# directory, and the mock provider on 127.0.0.1:$MOCK_PORT. Everything started is stopped, and
# the scratch directory removed, when the script exits. Adds started processes to PIDS.
#   MOCK_PORT=19990 . bench/common.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
swift build -c release --product gatemesh >/dev/null 2>&1
BIN="$(swift build -c release --show-bin-path)/gatemesh"
WORK="$(mktemp -d)"
"$BIN" mock-provider --listen "127.0.0.1:${MOCK_PORT}" >/dev/null &
PIDS=($!)
trap 'kill ${PIDS[*]} 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
