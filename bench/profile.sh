#!/usr/bin/env bash
# Profile the gateway under the benchmark's load: nginx backend + wrk on CPU0, the gateway pinned to CPU1,
# py-spy sampling it (non-blocking) while wrk runs; prints the self/total time summary.
#   bench/profile.sh                       # small JSON; PROFILE_PATH=/big for the 16 KiB body
#   DURATION=15 RATE=1000 bench/profile.sh
# Everything it starts is stopped by PID on exit; the ports are the benchmark's (18081, 18090, 19901).
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
PY=${PY:-$ROOT/.venv/bin/python}
PYSPY=${PYSPY:-$ROOT/.venv/bin/py-spy}
DURATION=${DURATION:-15}
RATE=${RATE:-1000}
PROFILE_PATH=${PROFILE_PATH:-/api/orders/123}
OUT=${OUT:-$BENCH/results/profile-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"/backend/tmp "$OUT"/backend/www
"$PY" -c "import sys; sys.stdout.buffer.write((bytes(range(32,127))*200)[:16384])" >"$OUT/backend/www/big"
for port in 18081 18090 19901; do
  if ss -Hltn "sport = :$port" | grep -q .; then echo "ERROR: port $port already in use" >&2; exit 1; fi
done
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
taskset -c 0 nginx -c "$BENCH/backend.conf" -p "$OUT/backend/" -e "$OUT/backend/error.log" >"$OUT/nginx.log" 2>&1 &
PIDS+=($!)
taskset -c 1 "$PY" -m gateway serve --routes "$BENCH/routes.bench.yaml" --host 127.0.0.1 --port 18090 \
  --admin-port 19901 >"$OUT/access.log" 2>"$OUT/gateway.log" &
GW=$!
PIDS+=("$GW")
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:18090$PROFILE_PATH" 2>/dev/null && break; sleep 0.1; done
taskset -c 0 wrk -t1 -c32 -d3s "http://127.0.0.1:18090$PROFILE_PATH" >/dev/null  # warm-up
taskset -c 0 wrk -t1 -c32 -d"${DURATION}s" --latency "http://127.0.0.1:18090$PROFILE_PATH" >"$OUT/wrk.txt" &
WRK=$!
sleep 2
"$PYSPY" record -p "$GW" -d $((DURATION - 4)) -r "$RATE" -f raw --nonblocking -o "$OUT/profile.txt" >"$OUT/py-spy.log" 2>&1
wait "$WRK"
grep -E "Requests/sec|99%" "$OUT/wrk.txt"
"$PY" "$BENCH/pyspy_summary.py" "$OUT/profile.txt" 25 | tee "$OUT/summary.txt"
echo "profile, wrk output and summary in $OUT"
