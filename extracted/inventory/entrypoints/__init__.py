"""Entrypoints: the aiohttp API and the command line."""
