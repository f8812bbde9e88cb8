#!/usr/bin/env bash
# Reverse-proxy benchmark: same nginx backend, several proxies side by side.
#
#   ./run.sh                                   # all built-in targets
#   CANDIDATE_URL=http://127.0.0.1:18090 ./run.sh          # + a gateway you started
#   CANDIDATE_URL=http://127.0.0.1:18090 \
#   CANDIDATE_CMD="/path/venv/bin/python -m gateway --port 18090" ./run.sh
#                                              # run.sh starts/stops the gateway too
#
# Targets (all forward to the backend http://127.0.0.1:18081):
#   direct         backend itself, no proxy (floor)
#   nginx-proxy    nginx proxy_pass + upstream keepalive, 1 worker   :18082
#   aiohttp        naive_proxy.py --mode buffered (uvloop)           :18083
#   aiohttp-stream naive_proxy.py --mode stream   (uvloop)           :18084
#   mitmproxy      mitmdump --mode reverse (a Python proxy users pick) :18085 (opt-in: TARGETS=...)
#   candidate      $CANDIDATE_URL (base URL; the paths below are appended)
# Paths: small = /api/orders/123 (~200 B JSON), big = /big (16 KiB)
#
# Env knobs (defaults): DURATION=10s WARMUP=3s CONNS=32 THREADS=1
#   PIN=1 LOADER_CPUS=0 BACKEND_CPUS=0 PROXY_CPUS=1   (taskset pinning; PIN=0 disables)
#   TARGETS="direct nginx-proxy aiohttp aiohttp-stream"  BODIES="small big"
#   CANDIDATE_NAME=candidate
# Every process this script starts is recorded in run/pids and stopped by PID
# on exit (also on Ctrl-C); a leftover run/pids from a killed run is cleaned first.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=$BENCH/run
PY=${PY:-$BENCH/../.venv/bin/python}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
PIN=${PIN:-1}
LOADER_CPUS=${LOADER_CPUS:-0}
BACKEND_CPUS=${BACKEND_CPUS:-0}
PROXY_CPUS=${PROXY_CPUS:-1}
TARGETS=${TARGETS:-"direct nginx-proxy aiohttp aiohttp-stream"}
BODIES=${BODIES:-"small big"}
CANDIDATE_URL=${CANDIDATE_URL:-}
CANDIDATE_CMD=${CANDIDATE_CMD:-}
CANDIDATE_NAME=${CANDIDATE_NAME:-candidate}
BACKEND_PORT=18081

for tool in nginx wrk curl taskset setsid; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
[[ -x $PY ]] || { echo "missing venv: $PY (python3 -m venv .venv && .venv/bin/pip install aiohttp uvloop httpx)" >&2; exit 1; }

pin() {  # pin <cpus> cmd...  -> exec (same PID) under taskset when PIN=1
  local cpus=$1; shift
  if [[ $PIN == 1 ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
export PIN; export -f pin

# ---------- stop leftovers from an earlier, killed run (only PIDs we recorded) ----------
stop_pid() {  # stop_pid <pid>: TERM the process group we created with setsid, then KILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}
if [[ -f $RUN/pids ]]; then
  while read -r pid name; do
    # only if that PID still runs something from this bench (avoid PID reuse accidents)
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -qF -e "$BENCH" -e "${CANDIDATE_CMD:-@@none@@}"; then
      echo "stopping leftover $name (pid $pid)"; stop_pid "$pid"
    fi
  done <"$RUN/pids"
fi
rm -rf "$RUN"
mkdir -p "$RUN"/backend/tmp "$RUN"/backend/www "$RUN"/nginx-proxy/tmp
# deterministic 16 KiB body
"$PY" -c "import sys; sys.stdout.buffer.write((bytes(range(32,127))*200)[:16384])" >"$RUN/backend/www/big"

PIDS=()
cleanup() {
  local rc=$? pid
  set +e
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  [[ ${#PIDS[@]} -gt 0 ]] && echo "stopped ${#PIDS[@]} processes: ${PIDS[*]}"
  rm -f "$RUN/pids"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() {  # start <name> <cpus> cmd...   (own session/process group, PID == group id)
  local name=$1 cpus=$2; shift 2
  setsid bash -c 'pin "$@"' _ "$cpus" "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  local pid=$!
  PIDS+=("$pid"); echo "$pid $name" >>"$RUN/pids"
  echo "started $name pid=$pid cpus=$([[ $PIN == 1 ]] && echo "$cpus" || echo any): $*"
}

port_busy() { ss -Hltn "sport = :$1" | grep -q .; }
wait_http() {  # wait_http <name> <url>
  local i
  for i in $(seq 100); do
    curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "ERROR: $1 not answering at $2; log:" >&2; cat "$RUN/$1.log" >&2 || true; exit 1
}

declare -A URL=(
  [direct]=http://127.0.0.1:$BACKEND_PORT
  [nginx-proxy]=http://127.0.0.1:18082
  [aiohttp]=http://127.0.0.1:18083
  [aiohttp-stream]=http://127.0.0.1:18084
  [mitmproxy]=http://127.0.0.1:18085
)
declare -A PATHS=([small]=/api/orders/123 [big]=/big)

# ---------- start processes ----------
for port in 18081 18082 18083 18084 18085; do
  if port_busy "$port"; then echo "ERROR: port $port already in use:" >&2; ss -Hltnp "sport = :$port" >&2; exit 1; fi
done
start backend "$BACKEND_CPUS" nginx -c "$BENCH/backend.conf" -p "$RUN/backend/" -e "$RUN/backend/error.log"
wait_http backend "${URL[direct]}/api/orders/123"
for t in $TARGETS; do
  case $t in
    nginx-proxy)    start nginx-proxy "$PROXY_CPUS" nginx -c "$BENCH/nginx-proxy.conf" -p "$RUN/nginx-proxy/" -e "$RUN/nginx-proxy/error.log" ;;
    aiohttp)        start aiohttp "$PROXY_CPUS" "$PY" "$BENCH/naive_proxy.py" --port 18083 --upstream "${URL[direct]}" --mode buffered ;;
    aiohttp-stream) start aiohttp-stream "$PROXY_CPUS" "$PY" "$BENCH/naive_proxy.py" --port 18084 --upstream "${URL[direct]}" --mode stream ;;
    mitmproxy)      start mitmproxy "$PROXY_CPUS" "${MITMDUMP:-$BENCH/.venv-mitm/bin/mitmdump}" --mode "reverse:${URL[direct]}" --listen-host 127.0.0.1 -p 18085 -q ;;
    direct) ;;
    *) echo "unknown target $t" >&2; exit 1 ;;
  esac
done
if [[ -n $CANDIDATE_URL ]]; then
  URL[$CANDIDATE_NAME]=${CANDIDATE_URL%/}
  TARGETS="$TARGETS $CANDIDATE_NAME"
  # shellcheck disable=SC2086
  if [[ -n $CANDIDATE_CMD ]]; then
    if [[ $CANDIDATE_URL =~ :([0-9]+)(/|$) ]] && port_busy "${BASH_REMATCH[1]}"; then
      echo "ERROR: candidate port ${BASH_REMATCH[1]} already in use (unset CANDIDATE_CMD to bench a running gateway)" >&2; exit 1
    fi
    start "$CANDIDATE_NAME" "$PROXY_CPUS" bash -c "exec $CANDIDATE_CMD"
  fi
fi
for t in $TARGETS; do wait_http "$t" "${URL[$t]}/api/orders/123"; done

# ---------- correctness: every target must return the backend's bytes ----------
for b in $BODIES; do
  curl -fsS "${URL[direct]}${PATHS[$b]}" -o "$RUN/expect-$b"
  for t in $TARGETS; do
    if ! curl -fsS "${URL[$t]}${PATHS[$b]}" -o "$RUN/got-$t-$b" || ! cmp -s "$RUN/expect-$b" "$RUN/got-$t-$b"; then
      echo "WARNING: $t $b body differs from backend" >&2
    fi
  done
done

# ---------- benchmark ----------
OUT=$BENCH/results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
{
  echo "date: $(date -Is)  host: $(uname -srm)  nproc: $(nproc)"
  echo "wrk: -t$THREADS -c$CONNS -d$DURATION (warmup $WARMUP)  PIN=$PIN loader=$LOADER_CPUS backend=$BACKEND_CPUS proxy=$PROXY_CPUS"
  echo "nginx: $(nginx -v 2>&1)  python: $("$PY" -V)  $("$PY" -c 'import aiohttp,uvloop;print("aiohttp",aiohttp.__version__,"uvloop",uvloop.__version__)')"
  for t in $TARGETS; do echo "target $t = ${URL[$t]}"; done
} | tee "$OUT/meta.txt"

cpu_sample() { awk '/^cpu[0-9]+ /{busy=$2+$3+$4+$7+$8+$9; tot=busy+$5+$6; printf "%s %d %d\n",$1,busy,tot}' /proc/stat; }
cpu_pct() {  # cpu_pct <before> <after>  -> "cpu0 cpu1 ..." busy % per CPU
  paste -d' ' <(echo "$1") <(echo "$2") | awk '{t=$6-$3; printf "%s%d", (NR>1?" ":""), (t>0?100*($5-$2)/t:0)}'
}
ncpu=$(cpu_sample | wc -l)
printf "body\ttarget\trps\tp50_us\tp99_us\tsock_errors\tnon2xx%s\n" \
  "$(for i in $(seq 0 $((ncpu-1))); do printf '\tcpu%d' "$i"; done)" >"$OUT/results.tsv"

for b in $BODIES; do
  for t in $TARGETS; do
    url=${URL[$t]}${PATHS[$b]}
    echo ">>> $b $t $url"
    ( pin "$LOADER_CPUS" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$url" ) >/dev/null
    before=$(cpu_sample)
    ( pin "$LOADER_CPUS" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$BENCH/report.lua" "$url" ) >"$OUT/wrk-$b-$t.txt" 2>&1
    after=$(cpu_sample)
    line=$(grep '^RESULT' "$OUT/wrk-$b-$t.txt") || { echo "wrk failed:"; cat "$OUT/wrk-$b-$t.txt"; continue; }
    # shellcheck disable=SC2046
    declare $(echo "${line#RESULT }")
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$b" "$t" "$rps" "$p50_us" "$p99_us" "$sock_errors" "$non2xx" \
      "$(cpu_pct "$before" "$after" | tr ' ' '\t')" >>"$OUT/results.tsv"
    echo "    rps=$rps p50=${p50_us}us p99=${p99_us}us errors=$sock_errors non2xx=$non2xx cpu%=[$(cpu_pct "$before" "$after")]"
  done
done

echo
python3 "$BENCH/summarize.py" "$OUT/results.tsv" | tee "$OUT/table.txt"
echo "raw wrk output + results.tsv + table.txt in $OUT"
