"""Use cases of the orders service, written against ports (no HTTP, no SQL here)."""
