"""The ``pbx`` command line (entry point ``reconciler.cli.main:run_main``)."""
