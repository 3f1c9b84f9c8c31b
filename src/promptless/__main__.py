"""``python -m promptless``: the command line (see ``promptless.cli``)."""

from promptless.cli.main import main

main()
