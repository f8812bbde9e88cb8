"""Adapters: SQLAlchemy persistence (tables, repository, unit of work) and the legacy client."""
