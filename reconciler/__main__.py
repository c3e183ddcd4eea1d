"""``python -m reconciler`` is the ``pbx`` command."""

from reconciler.cli.main import run_main

run_main()
