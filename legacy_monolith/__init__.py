"""The shop's legacy Flask monolith (SPEC §3); see ``legacy_monolith.app.create_app``."""
