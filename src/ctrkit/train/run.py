"""A whole run: config -> store -> model -> trainer -> run directory with metrics.

The run directory holds everything needed to evaluate or predict later without the original
config: ``config.yaml`` (resolved), ``schema.json`` (fitted), ``encoders.json``, ``train.log``,
``history.json``, ``metrics.json``, ``best_model.pt`` and ``checkpoint.pt``.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ctrkit import HUGE_PAGE_ALLOC, __version__
from ctrkit.config import RunConfig
from ctrkit.data.loader import BatchLoader
from ctrkit.data.store import Store
from ctrkit.models.registry import build_model
from ctrkit.train.allocator import keep_freed_memory, release_free_memory
from ctrkit.train.checkpoint import atomic_write_json, atomic_write_text
from ctrkit.train.data import prepare_store
from ctrkit.train.trainer import Trainer, seed_everything

log = logging.getLogger("ctrkit.train")


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]


def set_threads(n: int) -> None:
    """Pin torch's intra-op threads; inter-op to 1 (CTR models have no parallel branches worth a
    thread on 2 cores, and extra pools oversubscribe them)."""
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process


def _setup_logging(run_dir: Path) -> logging.Handler:
    logger = logging.getLogger("ctrkit")
    logger.setLevel(logging.INFO)
    fh = logging.FileHandler(run_dir / "train.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(fh)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in logger.handlers):
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(sh)
    return fh


def _default_run_dir(cfg: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.dataset.name}-{cfg.model.name}-{stamp}"


def _loaders(store: Store, cfg: RunConfig, rank: int = 0, world: int = 1) -> tuple[BatchLoader, BatchLoader]:
    t = cfg.training
    train = BatchLoader(store, "train", t.batch_size, shuffle=True, seed=t.seed, prefetch=t.prefetch, rank=rank, world_size=world)
    valid_split = "valid" if "valid" in store.splits else "test"
    valid = BatchLoader(store, valid_split, t.eval_batch_size, prefetch=t.prefetch, rank=rank, world_size=world)
    return train, valid


def process_group() -> tuple[int, int]:
    """(rank, world size) when launched under ``torch.distributed`` (e.g. torchrun), else (0, 1).

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) without a process group yet, one is
    started (gloo on CPU, NCCL with CUDA) from the environment. With a process group the loaders
    shard batches by rank, every step averages gradients across ranks
    (:mod:`ctrkit.train.distributed`), evaluation gathers every rank's predictions before computing
    metrics, and only rank 0 logs and writes files.
    """
    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _warm_optimizer_import() -> threading.Thread | None:
    """Import ``torch._dynamo`` in a background thread, or None when it is imported already.

    Why: the first ``torch.optim`` optimizer a process builds imports ``torch._dynamo`` (its
    ``__init__`` is wrapped in ``torch._disable_dynamo``), which takes 1.0-1.4 s here. Started
    before the store is prepared, the import runs while the data is read (the readers release the
    GIL), instead of after it. A failure is left for the real import to raise.
    """
    if "torch._dynamo" in sys.modules:
        return None

    def load() -> None:
        try:
            importlib.import_module("torch._dynamo")
        except Exception:  # noqa: BLE001 - the optimizer's own import reports it
            pass

    thread = threading.Thread(target=load, name="ctrkit-warm-import", daemon=True)
    thread.start()
    return thread


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train(
    config: RunConfig | dict[str, Any] | str | Path,
    *,
    resume: str | Path | None = None,
    on_evaluation: Callable[[int, dict[str, dict[str, Any]]], None] | None = None,
) -> RunResult:
    """Train and evaluate one run; returns the run directory and its final metrics.

    ``config`` may be a :class:`RunConfig`, a mapping, or a YAML path. ``resume`` continues the
    run in that directory from its last checkpoint (its saved config is used).
    ``on_evaluation(epoch, valid_metrics)`` is passed to the :class:`Trainer` (see there).
    """
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").exists():
            raise FileNotFoundError(f"{run_dir}: not a run directory (no config.yaml)")
        cfg = RunConfig.from_yaml(run_dir / "config.yaml")
    else:
        if isinstance(config, (str, Path)):
            cfg = RunConfig.from_yaml(config)
        elif isinstance(config, dict):
            cfg = RunConfig.from_dict(config)
        else:
            cfg = config
        run_dir = Path(cfg.run_dir) if cfg.run_dir else _default_run_dir(cfg)
        if (run_dir / "checkpoint.pt").exists():
            raise FileExistsError(f"{run_dir} already holds a run; use resume or another run_dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg = cfg.model_copy(update={"run_dir": str(run_dir)})
        atomic_write_text(cfg.to_yaml(), run_dir / "config.yaml")
    t = cfg.training
    handler = _setup_logging(run_dir)
    malloc_reuse = False
    try:
        set_threads(t.threads)
        malloc_reuse = keep_freed_memory()
        warm = _warm_optimizer_import()
        t_prepare = time.perf_counter()
        store = prepare_store(cfg.dataset, progress=t.progress)
        prepare_seconds = time.perf_counter() - t_prepare
        schema = store.schema
        (run_dir / "schema.json").write_text(schema.to_json() + "\n")
        shutil.copyfile(store.dir / "encoders.json", run_dir / "encoders.json")
        atomic_write_json({"store": str(store.dir.resolve()), "fingerprint": store.manifest["fingerprint"]}, run_dir / "store.json")
        seed_everything(t.seed)
        model = build_model(cfg.model.name, schema, cfg.model.params)
        rank, world = process_group()
        train_loader, valid_loader = _loaders(store, cfg, rank, world)
        if warm is not None:
            warm.join()
        trainer = Trainer(model, t, train_loader, valid_loader, run_dir, rank=rank, world_size=world, on_evaluation=on_evaluation)
        log.info(
            "ctrkit %s | %s on %s | %d parameters | embeddings %s | threads torch=%d polars=%s | batch %d | huge-page alloc %s | malloc reuse %s",
            __version__,
            cfg.model.name,
            store.manifest["name"],
            count_parameters(model),
            t.embedding_mode,
            torch.get_num_threads(),
            os.environ.get("POLARS_MAX_THREADS", "default"),
            t.batch_size,
            "on" if HUGE_PAGE_ALLOC else "off",
            "on" if malloc_reuse else "off",
        )
        state = trainer.fit(resume=resume is not None)
        # The restored weights are the ones evaluated on validation at the best epoch: that
        # evaluation gives their validation metrics (the same numbers) without a second pass. Not
        # when the epochs were evaluated on test (no valid split), or sharded over processes (the
        # gathered predictions come in another order, so sums may differ in the last bit).
        restored = trainer.restore_best()
        best = None
        if restored and "valid" in store.splits and world == 1:
            best = next((r for r in state.history if r["epoch"] == state.best_epoch and "eval_seconds" in r), None)
        metrics: dict[str, Any] = {
            "model": cfg.model.name,
            "dataset": store.manifest["name"],
            "seed": t.seed,
            "embedding_mode": t.embedding_mode,
            "threads": torch.get_num_threads(),
            "parameters": count_parameters(model),
            "best_epoch": state.best_epoch,
            "epochs": state.epoch,
            "prepare_seconds": prepare_seconds,
            "train_seconds": state.train_seconds,
            "train_samples_per_sec": state.train_samples / state.train_seconds if state.train_seconds else None,
        }
        for split in ("valid", "test"):
            if split == "valid" and best is not None:
                metrics["valid"] = copy.deepcopy(best["valid"])
                metrics["valid_eval_samples_per_sec"] = store.rows("valid") / best["eval_seconds"]
            elif split in store.splits:
                loader = BatchLoader(store, split, t.eval_batch_size, prefetch=t.prefetch)
                t0 = time.perf_counter()
                metrics[split] = trainer.evaluate(loader)
                metrics[f"{split}_eval_samples_per_sec"] = store.rows(split) / (time.perf_counter() - t0)
        atomic_write_json(state.history, run_dir / "history.json")
        atomic_write_json(metrics, run_dir / "metrics.json")
        if "test" in metrics:
            log.info(
                "test %s",
                json.dumps({k: {m: round(v, 6) for m, v in d.items() if isinstance(v, float)} for k, d in metrics["test"].items()}),
            )
        return RunResult(run_dir, metrics)
    finally:
        logging.getLogger("ctrkit").removeHandler(handler)
        handler.close()
        if malloc_reuse:
            release_free_memory()  # the steps' memory, kept for reuse while training


def load_run(run_dir: str | Path) -> tuple[RunConfig, torch.nn.Module, Store]:
    """The config, the best model (eval mode) and the store of a finished run."""
    d = Path(run_dir)
    cfg = RunConfig.from_yaml(d / "config.yaml")
    store_info = json.loads((d / "store.json").read_text())
    store_dir = Path(store_info["store"])
    if (store_dir / "manifest.json").exists():
        store = Store.open(store_dir)
    else:
        store = prepare_store(cfg.dataset, progress=False)
    from ctrkit.schema import FeatureSchema

    schema = FeatureSchema.from_json(d / "schema.json")
    model = build_model(cfg.model.name, schema, cfg.model.params)
    model.load_state_dict(torch.load(d / "best_model.pt", weights_only=True))
    model.eval()
    return cfg, model, store
