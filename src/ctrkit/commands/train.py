"""``ctrkit train``, ``evaluate``, ``predict`` and ``demo``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ctrkit.errors import CtrkitError


def _fail(e: Exception) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(2)


def _metrics_table(metrics: dict) -> str:
    rows = []
    for split in ("valid", "test"):
        for task, m in metrics.get(split, {}).items():
            extra = f"  gauc {m['gauc']:.6f}" if "gauc" in m else ""
            rows.append(f"{split:<5} {task:<12} auc {m['auc']:.6f}  logloss {m['logloss']:.6f}  ne {m['ne']:.4f}  calib {m['calibration']:.4f}{extra}")
    return "\n".join(rows)


@click.command("train")
@click.argument("config", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set training.batch_size=1024 (repeatable).")
@click.option("--resume", type=click.Path(exists=True, file_okay=False), help="Continue the run in this directory from its last checkpoint.")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Where to write the run (default: runs/<dataset>-<model>-<time>).")
def train_cmd(config: str | None, overrides: tuple[str, ...], resume: str | None, run_dir: str | None) -> None:
    """Train and evaluate a model from a run CONFIG (YAML).

    The run directory gets the resolved config, fitted schema and encoders, logs, history,
    metrics.json, the best model and a checkpoint; evaluate/predict need nothing else.
    """
    from ctrkit.config import RunConfig
    from ctrkit.train.run import train

    try:
        if resume:
            if config or overrides:
                raise click.UsageError("--resume takes the run's saved config; give no CONFIG or --set")
            result = train(None, resume=resume)  # type: ignore[arg-type]
        else:
            if not config:
                raise click.UsageError("give a CONFIG file (or --resume RUN_DIR)")
            extra = list(overrides) + ([f"run_dir={run_dir}"] if run_dir else [])
            result = train(RunConfig.from_yaml(config, extra))
    except CtrkitError as e:
        _fail(e)
        return
    click.echo(_metrics_table(result.metrics))
    click.echo(f"run: {result.run_dir}")


@click.command("evaluate")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--split", default="test", show_default=True, help="Split of the run's dataset to evaluate.")
@click.option("--batch-size", default=16384, show_default=True)
def evaluate_cmd(run_dir: str, split: str, batch_size: int) -> None:
    """Evaluate a finished run's best model on a split of its dataset."""
    from ctrkit.data.loader import BatchLoader
    from ctrkit.train.run import load_run
    from ctrkit.train.trainer import Trainer

    try:
        cfg, model, store = load_run(run_dir)
        loader = BatchLoader(store, split, batch_size, prefetch=0)
    except (CtrkitError, KeyError) as e:
        _fail(e)
        return
    result = Trainer.predict_with(model, loader).metrics()
    click.echo(json.dumps({split: result}, indent=2))


@click.command("predict")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Write predictions here (CSV); default: print.")
@click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "parquet", "libsvm"]), help="File format (default: from the extension).")
@click.option("--no-header", is_flag=True, help="The file has no header line (columns as in training).")
def predict_cmd(run_dir: str, file: str, out: str | None, fmt: str | None, no_header: bool) -> None:
    """Score a raw FILE with a finished run (labels not needed): one probability per task."""
    from ctrkit.predict import predict_file

    columns = None
    if no_header:
        from ctrkit.config import RunConfig

        columns = RunConfig.from_yaml(Path(run_dir) / "config.yaml").dataset.columns
    try:
        df = predict_file(run_dir, file, format=fmt, header=not no_header, columns=columns)
    except CtrkitError as e:
        _fail(e)
        return
    if out:
        from ctrkit.train.checkpoint import atomic_write_text

        atomic_write_text(df.write_csv(), out)
        click.echo(f"{df.height} predictions -> {out}")
    else:
        click.echo(df.write_csv(), nl=False)


@click.command("demo")
@click.option("--rows", default=300_000, show_default=True, help="Synthetic rows (train/valid/test 8:1:1).")
@click.option("--model", "model_name", default="DeepFM", show_default=True, help="Registered model to train.")
@click.option("--epochs", default=3, show_default=True)
@click.option("--workdir", default="demo", show_default=True, type=click.Path(file_okay=False))
def demo_cmd(rows: int, model_name: str, epochs: int, workdir: str) -> None:
    """Generate Criteo-shaped synthetic data with a known ceiling, train a model, compare.

    Prints the model's test AUC/logloss next to the Bayes-optimal values of the planted click
    model, so the gap is what the model still misses.
    """
    from ctrkit.data.synthetic import SynthConfig, load_truth, synthesize
    from ctrkit.train.run import train

    wd = Path(workdir)
    data_dir = wd / f"synthetic-{rows}"
    if not (data_dir / "truth.json").exists():
        click.echo(f"generating {rows:,} synthetic rows into {data_dir} ...")
        synthesize(data_dir, SynthConfig(rows=rows), overwrite=True)
    truth = load_truth(data_dir)
    run_dir = wd / "runs" / f"{model_name}-{len(list((wd / 'runs').glob('*'))) if (wd / 'runs').exists() else 0}"
    cfg = {
        "dataset": {"name": "generic", "source": str(data_dir), "store": str(wd / "stores" / f"synthetic-{rows}")},
        "model": {"name": model_name, "params": {}},
        "training": {"epochs": epochs, "batch_size": 4096, "seed": 2024},
        "run_dir": str(run_dir),
    }
    result = train(cfg)
    m = result.metrics["test"]["click"]
    bayes = truth["bayes"]["test"]["click"]
    click.echo("")
    click.echo(f"{'':<14}{'test AUC':>10}{'logloss':>10}")
    click.echo(f"{model_name:<14}{m['auc']:>10.4f}{m['logloss']:>10.4f}")
    click.echo(f"{'Bayes optimal':<14}{bayes['auc']:>10.4f}{bayes['logloss']:>10.4f}")
    click.echo(f"gap to the ceiling: AUC {bayes['auc'] - m['auc']:.4f}, logloss {m['logloss'] - bayes['logloss']:.4f}")
    click.echo(f"run: {result.run_dir}  ({result.metrics['train_samples_per_sec']:.0f} training samples/s, {result.metrics['threads']} threads)")
