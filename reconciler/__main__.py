"""``python -m reconciler`` is the ``pbx`` command."""

from reconciler.cli import run_main

run_main()
