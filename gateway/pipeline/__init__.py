"""The request pipeline: one small module per stage, run in order by gateway.proxy.

    normalise  paths: split target, normalise path (400)            normalise.py
    match      route table: RouteRuntime, upstream path, headers     match.py, headers.py
    (shadow)   sample; what of the request/answer is kept for a copy shadow.py
    idempotency  keyed requests: replay, or claim then settle        gateway/idempotency/stage.py
    body       the request body: buffered or streamed                body.py
    decide     the policy core's first target, or 503                decide.py (gateway/policy.py)
    exchange   upstream call; retry/fallback/fail per the policy     exchange.py (health.py)
    respond    relay the answer (gateway/http1.py) or a JSON error   respond.py
    record     metrics and the access-log line                       record.py

`Context` (context.py) is the one per-request object they share. See docs/architecture.md.
"""
