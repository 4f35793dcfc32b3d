"""``python -m reconciler``: the command line (as the ``reconciler`` script)."""

from reconciler.cli import main

main()
