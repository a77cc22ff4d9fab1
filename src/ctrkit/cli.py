"""The ``ctrkit`` command line. Thin: parses, calls library functions, prints.

Subcommand groups live in ``ctrkit.commands.<group>`` and are attached here.
"""

from __future__ import annotations

import importlib

import click

from ctrkit import __version__

# (module, attribute) of every subcommand, in the order ``--help`` lists them.
_COMMANDS = [
    ("ctrkit.commands.train", "demo_cmd"),
    ("ctrkit.commands.train", "train_cmd"),
    ("ctrkit.commands.train", "evaluate_cmd"),
    ("ctrkit.commands.train", "predict_cmd"),
    ("ctrkit.commands.bench", "bench_cmd"),
    ("ctrkit.commands.bench", "tune_cmd"),
    ("ctrkit.commands.bench", "report_cmd"),
    ("ctrkit.commands.serve", "export_cmd"),
    ("ctrkit.commands.serve", "serve_cmd"),
    ("ctrkit.commands.data", "data"),
    ("ctrkit.commands.models", "models"),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ctrkit")
def main() -> None:
    """ctrkit: raw click logs to trained, evaluated and served CTR models."""


for _mod, _attr in _COMMANDS:
    try:
        main.add_command(getattr(importlib.import_module(_mod), _attr))
    except ModuleNotFoundError as e:  # a group still being written must not break the others
        if e.name != _mod:
            raise


if __name__ == "__main__":  # pragma: no cover
    main()
