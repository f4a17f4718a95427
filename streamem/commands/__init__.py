"""What the ``streamem`` subcommands do; :mod:`streamem.cli` parses their arguments."""
