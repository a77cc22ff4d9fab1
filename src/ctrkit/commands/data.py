"""``ctrkit data``: list, download, split, prepare (encode into a store), report, synth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import click

from ctrkit.errors import CtrkitError


def _fail(e: Exception | str) -> click.ClickException:
    return click.ClickException(str(e))


def _adapter(name: str, opts: dict[str, Any]) -> Any:
    from ctrkit.data.datasets import get_dataset

    try:
        if name.lower() == "generic":
            return get_dataset(
                "generic",
                train=opts.get("train"),
                valid=opts.get("valid"),
                test=opts.get("test"),
                schema=opts.get("schema"),
                format=opts.get("fmt"),
                header=not opts.get("no_header", False),
                columns=opts["columns"].split(",") if opts.get("columns") else None,
                separator=opts.get("sep"),
            )
        return get_dataset(name)
    except KeyError as e:
        raise click.BadParameter(str(e.args[0]), param_hint="NAME") from None


def _generic_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options that only the ``generic`` dataset uses (files, schema, read options)."""
    opts = [
        click.option("--schema", type=click.Path(dir_okay=False), help="generic: schema YAML (default: SOURCE/schema.yaml)."),
        click.option("--train", type=click.Path(dir_okay=False), help="generic: train file (default: SOURCE/train.*)."),
        click.option("--valid", type=click.Path(dir_okay=False), help="generic: validation file."),
        click.option("--test", type=click.Path(dir_okay=False), help="generic: test file."),
        click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "parquet", "libsvm"]),
                     help="generic: file format (default: from the file name)."),
        click.option("--no-header", is_flag=True, help="generic: the files have no header line (give --columns)."),
        click.option("--columns", help="generic: comma-separated column names of header-less files."),
        click.option("--sep", help="generic: field separator (default: ',' csv, tab tsv)."),
    ]  # fmt: skip
    for o in reversed(opts):
        f = o(f)
    return f


def _build(name: str, source: str | None, store_dir: str | None, *, skip_bad_rows: bool, verify: bool,
           force: bool, work_dir: str | None, progress: bool, opts: dict[str, Any]) -> Any:  # fmt: skip
    from ctrkit.data.store import build_store

    adapter = _adapter(name, opts)
    if source is None and name.lower() != "generic":
        raise click.UsageError(f"--source DIR is required for '{name}' (a local directory with its files)")
    target = Path(store_dir) if store_dir else Path("stores") / adapter.name
    wd = Path(work_dir) if work_dir else target.parent / f".{target.name}.work"
    try:
        spec = adapter.data_spec(
            source,
            verify=verify,
            work_dir=wd,
            on_bad_rows="skip" if skip_bad_rows else "error",
            progress=progress,
        )
        store = build_store(spec, target, force=force, progress=progress)
    except CtrkitError as e:
        raise _fail(e) from None
    dropped = getattr(adapter, "dropped", {}) or {}
    for split, n in dropped.items():
        if n:
            click.echo(
                f"warning: {n} malformed row(s) of the raw {split} file skipped before preprocessing; "
                f"see {wd / 'derived' / 'rejects' / f'{split}.csv'}",
                err=True,
            )
    return store


@click.group("data")
def data() -> None:
    """Datasets: list the built-in ones, download them, encode them into a store, report on them."""


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the full descriptions (files, md5s, URLs) as JSON.")
def list_cmd(as_json: bool) -> None:
    """List the built-in datasets with their published split sizes."""
    from ctrkit.data.datasets import list_datasets

    ds = list_datasets()
    if as_json:
        click.echo(json.dumps([d.info() for d in ds], indent=2))
        return
    w = max(len(d.name) for d in ds)
    for d in ds:
        rows = "/".join(f"{f.rows:,}" for f in d.files if f.rows) if d.files else "-"
        click.echo(f"{d.name:<{w}}  {rows:<34}  {d.summary}")


@data.command("download")
@click.argument("name")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to put the files in.")
@click.option("--source", type=click.Path(exists=True),
              help="Use this local directory or zip archive instead of the network.")  # fmt: skip
@click.option("--url", "urls", multiple=True, help="Download from this URL instead of the built-in locations (repeatable).")
@click.option("--no-verify", is_flag=True, help="Skip the md5 check against the published checksums.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def download_cmd(name: str, out_dir: str, source: str | None, urls: tuple[str, ...], no_verify: bool, quiet: bool) -> None:
    """Fetch dataset NAME into --out, verifying the published md5 of every file.

    Downloads the reczoo archive (Hugging Face, then Zenodo), writes each file atomically and
    checks it before it is put in place. Files already present and valid are kept.
    """
    from ctrkit.data.datasets import fetch_dataset

    adapter = _adapter(name, {})
    try:
        paths = fetch_dataset(adapter, out_dir, source=source, urls=urls or None, verify=not no_verify, progress=not quiet)
    except CtrkitError as e:
        raise _fail(e) from None
    for split, p in paths.items():
        click.echo(f"{split}: {p}")


@data.command("split")
@click.argument("name", type=click.Choice(["criteo_x4", "avazu_x4"], case_sensitive=False))
@click.argument("raw_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for train/valid/test.csv.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def split_cmd(name: str, raw_file: str, out_dir: str, quiet: bool) -> None:
    """Split the raw Kaggle RAW_FILE into BARS' x4 train/valid/test.csv (stratified, seed 2018).

    criteo_x4 takes Criteo's train.txt (tab-separated, no header); avazu_x4 takes Avazu's
    train.csv. `prepare` does this by itself when --source holds only the raw file.
    """
    from ctrkit.data.datasets import get_dataset

    try:
        paths = get_dataset(name).split_raw(raw_file, out_dir, progress=not quiet)  # type: ignore[attr-defined]
    except CtrkitError as e:
        raise _fail(e) from None
    for split, p in paths.items():
        click.echo(f"{split}: {p}")


@data.command("prepare")
@click.argument("name")
@click.option("--source", type=click.Path(exists=True, file_okay=False), help="Local directory with the dataset's files.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False), help="Store directory (default: ./stores/NAME).")
@click.option("--skip-bad-rows", is_flag=True,
              help="Skip malformed rows instead of stopping; they are counted and written to STORE/rejects/.")  # fmt: skip
@click.option("--verify", is_flag=True, help="Check the files against the published md5s first.")
@click.option("--force", is_flag=True, help="Rebuild even if the store is up to date.")
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Where raw splits and preprocessed columns go (default: beside the store).")  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_generic_options
def prepare_cmd(name: str, source: str | None, store_dir: str | None, skip_bad_rows: bool, verify: bool, force: bool,
                work_dir: str | None, quiet: bool, **opts: Any) -> None:  # fmt: skip
    """Encode dataset NAME from --source into a store (reused when nothing changed).

    Applies the published split and preprocessing; encoders are fitted on train only. For
    criteo_x4/avazu_x4 a directory holding only the raw Kaggle file is split first.

    Plain CSV/TSV files go through the native reader (a C extension, 1.7-2x faster); quoted
    fields, Parquet, libsvm, compressed files, --skip-bad-rows and any bad row go through the
    Polars reader, with the same store. CTRKIT_NATIVE_READER=0 turns the native reader off;
    'ctrkit data report' says which reader wrote a store.
    """
    store = _build(name, source, store_dir, skip_bad_rows=skip_bad_rows, verify=verify, force=force,
                   work_dir=work_dir, progress=not quiet, opts=opts)  # fmt: skip
    rows = ", ".join(f"{s} {store.rows(s):,}" for s in store.splits)
    rejected = sum(int(store.manifest["splits"][s].get("rejected", 0)) for s in store.splits)
    click.echo(f"store: {store.dir}  ({rows}; {rejected:,} rejected)")


@data.command("report")
@click.argument("name")
@click.option("--source", type=click.Path(exists=True, file_okay=False), help="Local directory with the dataset's files.")
@click.option("--store", "store_dir", type=click.Path(file_okay=False), help="Store directory (default: ./stores/NAME).")
@click.option("--skip-bad-rows", is_flag=True, help="Build the store skipping malformed rows (counted in the report).")
@click.option("--work-dir", type=click.Path(file_okay=False), help="Where derived files go (default: beside the store).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_generic_options
def report_cmd(name: str, source: str | None, store_dir: str | None, skip_bad_rows: bool, work_dir: str | None,
               as_json: bool, quiet: bool, **opts: Any) -> None:  # fmt: skip
    """Per-split row counts, label balance, rejected rows, vocabulary sizes and OOV rates.

    Builds the store first when it is missing or out of date (same as `prepare`). With no
    --source, reports on an existing store (--store or ./stores/NAME).
    """
    from ctrkit.data.report import data_report, format_report
    from ctrkit.data.store import Store

    if source is None and name.lower() != "generic":
        target = Path(store_dir) if store_dir else Path("stores") / name
        try:
            store = Store.open(target)
        except CtrkitError as e:
            raise _fail(f"{e} (give --source DIR to build it)") from None
    else:
        store = _build(name, source, store_dir, skip_bad_rows=skip_bad_rows, verify=False, force=False,
                       work_dir=work_dir, progress=not quiet, opts=opts)  # fmt: skip
    rep = data_report(store)
    click.echo(json.dumps(rep, indent=2) if as_json else format_report(rep))


@data.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--rows", type=int, default=100_000, show_default=True, help="Total rows (split train/valid/test).")
@click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "parquet"]), default="tsv", show_default=True,
              help="File format.")  # fmt: skip
@click.option("--sequence", is_flag=True, help="Add user/item/behaviour-sequence columns.")
@click.option("--funnel", is_flag=True, help="Add a conversion label (click -> conversion).")
@click.option("--domains", type=int, default=0, show_default=True, help="Number of domains (0: none).")
@click.option("--seed", type=int, default=2024, show_default=True, help="Random seed.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty OUT_DIR.")
def synth_cmd(out_dir: str, rows: int, fmt: str, sequence: bool, funnel: bool, domains: int, seed: int,
              overwrite: bool) -> None:  # fmt: skip
    """Write a synthetic dataset with a known Bayes-optimal AUC to OUT_DIR.

    The directory (train/valid/test files, schema.yaml, truth.json) is a `generic` source:
    `ctrkit data prepare generic --source OUT_DIR`.
    """
    from ctrkit.data.synthetic import SynthConfig, synthesize

    try:
        cfg = SynthConfig(rows=rows, format=fmt, sequence=sequence, funnel=funnel, domains=domains, seed=seed)  # type: ignore[arg-type]
        res = synthesize(out_dir, cfg, overwrite=overwrite)
    except (CtrkitError, FileExistsError) as e:
        raise _fail(e) from None
    click.echo(f"wrote {res.out_dir} ({', '.join(f'{s} {n:,}' for s, n in res.rows.items())})")
