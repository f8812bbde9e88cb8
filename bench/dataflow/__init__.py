"""The data-flow benchmark (SPEC §3 I5, §5 "The data flow"): a benchmark, not a test.

Starts the data-flow processes of the repository's Procfile (legacy, legacy-consumer, inventory,
inventory-sync, orders, orders-sync; the gateway too unless --no-gateway) as separate processes
in a scratch directory on free loopback ports, with STOCK_AUTHORITY=inventory and the embedded
defaults (SQLite databases + the SQLite event log), or with --redis: REDIS_URL (a fresh stream)
and fresh PostgreSQL databases. For each legacy size (200 and 200,000 orders; 200 and 10,000
with --quick) it measures:

1. change lag under the demo load (legacy -> new, new -> legacy, the stock authority -> the
   legacy's read copy): p50/p95/p99/max, target p99 < 1 s;
2. CPU per change of the sync processes (orders-sync, inventory-sync, legacy-consumer) over N
   changes, at both sizes (target: the same within noise), plus the backfill time;
3. idle CPU of the whole stack (target < 2 % of one core).

    make bench-dataflow [DATAFLOW_ARGS="--quick --redis"]
    .venv/bin/python -m bench.dataflow [--quick] [--redis] [--idle-seconds 60] [--keep]

The results go to bench/dataflow/results/<timestamp>.txt (gitignored). Every process started is
stopped by its process group at the end, also on Ctrl-C; a run killed hard leaves its PIDs in
bench/dataflow/.pids, stopped by the next run.
"""
