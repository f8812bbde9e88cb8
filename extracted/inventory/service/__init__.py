"""Use cases of the inventory service and the ports they need."""
