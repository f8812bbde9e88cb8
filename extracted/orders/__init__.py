"""The extracted orders service: hexagonal inside (domain, service, adapters, entrypoints)."""
