"""A real upstream HTTP server for gateway tests: `python -m tests.support.backend --port N --name NAME`.

Endpoints (any method):
  /status/{code}        answers that status with a JSON body
  /slow?ms=N[&only=X]   answers after N milliseconds (only backend X, when `only` is given)
  /hang                 accepts the request and never answers
  /big?size=N           streams N bytes (chunked, 64 KiB pieces)
  /upload               reads the whole body, answers its length and sha256
  /headers              echoes the request headers
  /random               {"nonce": <random>, "stable": 1, "backend": NAME}
  /hits                 how many requests carried each `?key=` value so far
  anything else         echoes method, path, query, body length (JSON)
Every response carries `X-Backend: NAME`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random

from aiohttp import web


def build(name: str) -> web.Application:
    hits: dict[str, int] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        hdr = {"X-Backend": name}
        key = request.query.get("key")
        if key:
            hits[key] = hits.get(key, 0) + 1
        if path == "/hits":
            return web.json_response({"backend": name, "hits": hits}, headers=hdr)
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            return web.json_response({"backend": name, "status": code}, status=code, headers=hdr)
        if path == "/slow":
            if request.query.get("only", name) == name:  # `only=b`: only backend b is slow
                await asyncio.sleep(int(request.query.get("ms", "1000")) / 1000)
            return web.json_response({"backend": name, "slow": True}, headers=hdr)
        if path == "/hang":
            await asyncio.sleep(3600)
        if path == "/big":
            size = int(request.query.get("size", "1048576"))
            resp = web.StreamResponse(headers={**hdr, "Content-Type": "application/octet-stream"})
            if request.query.get("length") == "1":
                resp.content_length = size
            await resp.prepare(request)
            piece = b"x" * 65536
            left = size
            while left > 0:
                n = min(left, len(piece))
                await resp.write(piece[:n])
                left -= n
            await resp.write_eof()
            return resp
        if path == "/upload":
            digest = hashlib.sha256()
            total = 0
            async for chunk in request.content.iter_any():
                digest.update(chunk)
                total += len(chunk)
            return web.json_response(
                {"backend": name, "length": total, "sha256": digest.hexdigest()}, headers=hdr
            )
        if path == "/random":  # one non-deterministic field, one stable field
            return web.json_response(
                {"nonce": random.random(), "stable": 1, "backend": name}, headers=hdr
            )
        if path == "/headers":
            return web.json_response(
                {"backend": name, "headers": [[k, v] for k, v in request.headers.items()]},
                headers=hdr,
            )
        body = await request.read()
        return web.json_response(
            {
                "backend": name,
                "method": request.method,
                "path": request.raw_path.split("?", 1)[0],
                "query": request.raw_path.partition("?")[2],
                "body_length": len(body),
            },
            headers=hdr,
        )

    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="backend")
    args = parser.parse_args()
    web.run_app(build(args.name), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
