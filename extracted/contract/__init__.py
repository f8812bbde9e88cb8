"""The HTTP contract both extracted services answer with (SPEC §3), written once.

Orders and inventory import it; they never copy each other. Its texts, codes, limits and
formats are deliberate copies of the legacy's (`legacy_monolith/errors.py`, `validation.py`,
`db.py`), because bodies must be byte-for-byte the legacy's and the services deploy without
the monolith's code; `tests/extracted/contract/test_legacy_parity.py` compares every copy with
its original.

* `errors`: detail texts and validation reasons, `ContractError` (status, code, detail, the
  `{"error","detail"}` body) and one constructor per error the contract knows.
* `validation`: body, query and path parsing shared by both services (first failure reported).
* `shapes`: the timestamp format, the list page body, the id floor of the new services.
* `http`: the aiohttp edge: JSON responses, the error middleware, `/healthz` answers.

Everything but `http` is pure (no I/O imports), so domain code may use it.
"""
