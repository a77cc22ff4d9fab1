"""The ``ctrkit`` command line. Thin: parses, calls library functions, prints."""

from __future__ import annotations

import click

from ctrkit import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ctrkit")
def main() -> None:
    """ctrkit: raw click logs to trained, evaluated and served CTR models."""


@main.command("models")
def models_cmd() -> None:
    """List registered models with their task kind and reference."""
    from ctrkit.models import list_models

    infos = list_models()
    w = max(len(m.name) for m in infos)
    for m in infos:
        click.echo(f"{m.name:<{w}}  {m.kind:<11}  {m.reference}")


if __name__ == "__main__":  # pragma: no cover
    main()
