"""Adapters: SQLAlchemy persistence, httpx clients of inventory and the monolith, breakers."""
