"""The real-switch tier: the project's own rendered node configuration booted on a real
FreeSWITCH, the real ``pbx run`` daemon, and real SIP calls placed with sipp.

Skipped (with the reason) when no FreeSWITCH build or no sipp is present; ``pytest -m
realswitch`` runs only this tier.
"""
