"""``ctrkit models``: the registered model zoo."""

from __future__ import annotations

import click


@click.command("models")
@click.option("--kind", type=click.Choice(["ctr", "sequence", "multitask", "multidomain"]), help="Only this kind.")
def models(kind: str | None) -> None:
    """List registered models with their task kind and a one-line reference."""
    from ctrkit.models import list_models

    infos = [m for m in list_models() if kind is None or m.kind == kind]
    if not infos:
        click.echo("no models")
        return
    w = max(len(m.name) for m in infos)
    for m in infos:
        click.echo(f"{m.name:<{w}}  {m.kind:<11}  {m.reference}")
