"""End-to-end tests: the daemon (in process and as ``pbx run``), real PostgreSQL, the fake
FreeSWITCH ESL peer and the xml_curl forms captured from a real FreeSWITCH 1.10.

Shared helpers and fixtures live in ``tests/e2e/conftest.py``; the broken-spec fixtures in
``tests/e2e/bad_specs/``.
"""
