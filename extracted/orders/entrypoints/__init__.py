"""Entrypoints: the aiohttp API, the wiring, and the CLI (serve, sync)."""
