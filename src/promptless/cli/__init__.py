"""The ``promptless`` command line: ``promptless compile | eval | run | inspect`` (see ``promptless --help``).

The app lives in ``promptless.cli.main``; this package's modules each do one job:
``data`` reads example files, ``artifact`` saves and rebuilds programs, ``programs``,
``metrics`` and ``optimizers`` turn options into library objects, ``render`` draws
tables, ``errors`` turns failures into one line and an exit code, and each
``cmd_*`` module is one command.
"""
