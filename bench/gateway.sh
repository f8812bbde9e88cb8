#!/usr/bin/env bash
# Benchmark the gateway against nginx and a plain aiohttp proxy, same backend, same run (SPEC §5).
#   bench/gateway.sh                      # ~2.5 min; results in bench/results/<timestamp>/
#   WORKERS=2 PROXY_CPUS=0,1 bench/gateway.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export PY=${PY:-$ROOT/.venv/bin/python}
WORKERS=${WORKERS:-1}
ROUTES=${ROUTES:-$HERE/routes.bench.yaml}   # bench/routes.shadow.yaml: the same with 100% shadowing
export CANDIDATE_NAME=${CANDIDATE_NAME:-gateway}
export CANDIDATE_URL=http://127.0.0.1:18090
export CANDIDATE_CMD="'$PY' -m gateway serve --routes '$ROUTES' --host 127.0.0.1 --port 18090 --admin-port 19901 --workers $WORKERS"
cd "$ROOT"
exec "$HERE/run.sh"
