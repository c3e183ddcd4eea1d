"""The data plane: xml_curl answered by worker processes of their own.

A worker maps the control plane's current snapshot generation (``serve.generation``) and
serves ``POST /freeswitch/xml``, ``/healthz`` and ``/readyz`` through the bounded listener
(``serve.listener``) on a socket inherited from ``pbx run``. It never imports the store, the
portal, the pass or a switch session (an import-linter contract), so nothing the control
plane does (a pass, a garbage collection, a dead database) can stall a lookup; when the
control plane dies it keeps answering from the last good generation.

    follower  the current generation: polled, verified, swapped; the last good one kept
    worker    the process: its settings on stdin, the listener, signals
"""
