"""Subcommands of ``ctseg``; each module has ``add_arguments(parser)`` and ``run(args)``."""
