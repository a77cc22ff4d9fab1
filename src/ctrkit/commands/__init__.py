"""Subcommands of the ``ctrkit`` CLI, one module per group; each exposes a click command/group."""
