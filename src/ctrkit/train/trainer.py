"""The trainer: steps, evaluation, learning-rate reduction, early stopping, checkpoints.

One protocol for every model (see :class:`ctrkit.config.TrainingConfig` for the BARS defaults).
The model only maps a batch to logits; the trainer owns devices, optimizers, losses and files.

Crash safety: a checkpoint with model, optimizers, early-stopping state, RNG states and the data
position (epoch, next batch) is written atomically every ``checkpoint_every_batches`` batches and
after every evaluation. Resuming restores all of it; the epoch's shuffle order is a function of
``(seed, epoch)``, so a resumed run sees the same batches in the same order and ends with the same
metrics as an uninterrupted one.

Data parallel (``torchrun``, any backend, CPU included): the loaders shard batches by rank, every
step averages dense and sparse gradients across ranks (:mod:`ctrkit.train.distributed`), every rank
takes the same number of steps per epoch, evaluation gathers predictions from every rank before
computing metrics, and only rank 0 logs and writes files.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ctrkit.batch import Batch
from ctrkit.config import TrainingConfig
from ctrkit.data.loader import BatchLoader
from ctrkit.metrics import evaluate_scores
from ctrkit.nn.embedding import set_sparse_embeddings
from ctrkit.train.checkpoint import atomic_torch_save
from ctrkit.train.distributed import average_gradients, sparse_parameters

log = logging.getLogger("ctrkit.train")


# --------------------------------------------------------------------------- monitor
_TERM = re.compile(
    r"^\s*(?:(?P<w>[0-9.eE+-]+)\s*\*\s*)?(?:(?P<task>[A-Za-z0-9_]+):)?"
    r"(?P<metric>auc-logloss|domain_mean_auc|auc|logloss|gauc|ne)\s*$"
)


def monitor_value(spec: str, metrics: dict[str, dict[str, float]]) -> float:
    """Evaluate a monitor expression over per-task metrics.

    ``auc`` (mean over tasks), ``click:auc``, ``auc-logloss`` (AUC minus logloss, FuxiCTR's
    combined monitor), ``domain_mean_auc`` (multi-domain data), and weighted sums such as
    ``0.7*click:auc+0.3*conversion:auc``.
    """
    total = 0.0
    for term in spec.split("+"):
        m = _TERM.match(term)
        if not m:
            raise ValueError(f"cannot parse monitor term '{term}' in '{spec}'")
        w = float(m.group("w")) if m.group("w") else 1.0
        tasks = [m.group("task")] if m.group("task") else list(metrics)
        vals = []
        for t in tasks:
            if t not in metrics:
                raise ValueError(f"monitor '{spec}' names task '{t}', tasks are {list(metrics)}")
            name = m.group("metric")
            if name == "auc-logloss":
                vals.append(metrics[t]["auc"] - metrics[t]["logloss"])
            else:
                vals.append(metrics[t][name])
        total += w * float(np.mean(vals))
    return total


# --------------------------------------------------------------------------- optimizers
def embedding_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Weights of every ``nn.Embedding`` (the tables that may be updated row-sparsely)."""
    seen: dict[int, nn.Parameter] = {}
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            seen[id(m.weight)] = m.weight
    return list(seen.values())


def build_optimizers(model: nn.Module, cfg: TrainingConfig) -> list[torch.optim.Optimizer]:
    """A dense optimizer for the network and, for embeddings, a row-sparse one (sparse mode) or
    the same dense optimizer with the embedding regulariser (dense mode, FuxiCTR's semantics)."""
    from ctrkit.train.optimizers import RowSparseAdagrad, RowSparseAdam

    emb = embedding_parameters(model)
    emb_ids = {id(p) for p in emb}
    net = [p for p in model.parameters() if id(p) not in emb_ids and p.requires_grad]
    emb_lr = cfg.embedding_learning_rate or cfg.learning_rate
    dense_cls: Callable[..., torch.optim.Optimizer] = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "sgd": torch.optim.SGD,
        "adagrad": torch.optim.Adagrad,
    }[cfg.optimizer]
    opts: list[torch.optim.Optimizer] = []
    groups: list[dict[str, Any]] = []
    if net:
        groups.append({"params": net, "lr": cfg.learning_rate, "weight_decay": cfg.net_regularizer})
    sparse = cfg.embedding_mode == "sparse"
    set_sparse_embeddings(model, sparse)
    if emb and not sparse:
        groups.append({"params": emb, "lr": emb_lr, "weight_decay": cfg.embedding_regularizer})
    if groups:
        opts.append(dense_cls(groups, lr=cfg.learning_rate))
    if emb and sparse:
        if cfg.embedding_optimizer == "adam":
            opts.append(RowSparseAdam(emb, lr=emb_lr, weight_decay=cfg.embedding_regularizer))
        else:
            opts.append(RowSparseAdagrad(emb, lr=emb_lr, weight_decay=cfg.embedding_regularizer))
    return opts


def clip_gradients(params: list[nn.Parameter], max_norm: float) -> float:
    """Clip the global gradient norm over dense and sparse gradients; returns the norm.

    Sparse gradients are coalesced here (duplicate rows summed, as the norm requires, with the
    optimizer's ``coalesce_rows``, several times faster than ``Tensor.coalesce`` on CPU) and
    stored back marked coalesced, so the row-sparse optimizer does not coalesce them again.
    """
    from ctrkit.train.optimizers import coalesce_rows

    sq = []
    for p in params:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            rows, vals = coalesce_rows(g)
            vals = vals.reshape(rows.numel(), *g.shape[1:])
            g = torch.sparse_coo_tensor(rows.unsqueeze(0), vals, g.shape, is_coalesced=True, check_invariants=False)
            p.grad = g
            sq.append(vals.pow(2).sum())
        else:
            sq.append(g.pow(2).sum())
    if not sq:
        return 0.0
    norm = torch.stack(sq).sum().sqrt()
    coef = max_norm / (float(norm) + 1e-6)
    if coef < 1.0:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef)
    return float(norm)


# --------------------------------------------------------------------------- state
@dataclass
class TrainState:
    """Everything a resumed run needs besides model and optimizer tensors."""

    epoch: int = 0  # epoch in progress
    batch: int = 0  # next batch (of this rank) within the epoch
    step: int = 0  # optimizer steps so far
    best: float | None = None
    best_epoch: int | None = None
    strikes: int = 0
    stopped: bool = False
    epoch_loss: float = 0.0
    epoch_batches: int = 0
    train_seconds: float = 0.0
    train_samples: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def task_loss(model_out: Any, batch: Batch) -> torch.Tensor:
    """Sum over tasks of mean binary cross-entropy on logits, plus the model's auxiliary loss."""
    loss = sum(F.binary_cross_entropy_with_logits(v, batch.labels[t]) for t, v in model_out.logits.items())
    if model_out.aux_loss is not None:
        loss = loss + model_out.aux_loss
    return loss  # type: ignore[return-value]


# --------------------------------------------------------------------------- trainer
class Trainer:
    """Train ``model`` on a store's ``train`` split, select on ``valid``, write to ``run_dir``."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainingConfig,
        train_loader: BatchLoader,
        valid_loader: BatchLoader,
        run_dir: Path,
        *,
        rank: int = 0,
        world_size: int = 1,
        on_evaluation: Callable[[int, dict[str, dict[str, Any]]], None] | None = None,
    ):
        """``on_evaluation(epoch, valid_metrics)`` is called after every validation pass (e.g. to
        report to a hyper-parameter tuner); an exception it raises stops training."""
        self.model = model
        self.cfg = cfg
        self.train_loader = train_loader
        self.valid_loader = valid_loader
        self.run_dir = Path(run_dir)
        self.rank = rank
        self.world_size = world_size
        self.on_evaluation = on_evaluation
        self.optimizers = build_optimizers(model, cfg)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._sparse_params = sparse_parameters(model)
        self.state = TrainState()
        self.ckpt_path = self.run_dir / "checkpoint.pt"
        self.best_path = self.run_dir / "best_model.pt"
        # Crash tests slow training down so a kill can land mid-epoch; never set otherwise.
        self._step_delay = float(os.environ.get("CTRKIT_TEST_STEP_DELAY", "0") or 0)

    # ------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        atomic_torch_save(
            {
                "model": self.model.state_dict(),
                "optimizers": [o.state_dict() for o in self.optimizers],
                "state": self.state.__dict__,
                "rng": _rng_state(),
            },
            self.ckpt_path,
        )

    def load_checkpoint(self) -> None:
        ck = torch.load(self.ckpt_path, weights_only=False)
        self.model.load_state_dict(ck["model"])
        for o, s in zip(self.optimizers, ck["optimizers"]):
            o.load_state_dict(s)
        self.state = TrainState(**ck["state"])
        _set_rng_state(ck["rng"])

    # ------------------------------------------------------------ evaluation
    @staticmethod
    @torch.inference_mode()
    def predict_with(model: nn.Module, loader: BatchLoader) -> "Predictions":
        """Logits per task, labels per task, groups and domains (or None) over a whole loader."""
        model.eval()
        logits: dict[str, list[np.ndarray]] = {}
        labels: dict[str, list[np.ndarray]] = {}
        groups: list[np.ndarray] = []
        domains: list[np.ndarray] = []
        for b in loader.epoch(0):
            out = model(b)
            for t, v in out.logits.items():
                logits.setdefault(t, []).append(v.float().numpy())
                labels.setdefault(t, []).append(b.labels[t].numpy())
            if b.group is not None:
                groups.append(b.group.numpy())
            if b.domain is not None:
                domains.append(b.domain.numpy())
        return Predictions(
            {t: np.concatenate(v) for t, v in logits.items()},
            {t: np.concatenate(v) for t, v in labels.items()},
            np.concatenate(groups) if groups else None,
            np.concatenate(domains) if domains else None,
        )

    def predict_loader(self, loader: BatchLoader) -> "Predictions":
        """Like :meth:`predict_with`, gathered from every rank when data parallel."""
        pred = self.predict_with(self.model, loader)
        if self.world_size > 1:
            pred = _gather_across_ranks(pred)
        return pred

    def evaluate(self, loader: BatchLoader) -> dict[str, dict[str, Any]]:
        return self.predict_loader(loader).metrics()

    # ------------------------------------------------------------ training
    def _step(self, batch: Batch) -> float:
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        out = self.model(batch)
        loss = task_loss(out, batch)
        loss.backward()
        if self.world_size > 1:
            average_gradients(self.params, self._sparse_params)
        if self.cfg.clip_grad_norm:
            clip_gradients(self.params, self.cfg.clip_grad_norm)
        for o in self.optimizers:
            o.step()
        return float(loss.detach())

    def _reduce_lr(self) -> float:
        new = None
        for o in self.optimizers:
            for g in o.param_groups:
                g["lr"] = max(g["lr"] * self.cfg.reduce_lr_factor, self.cfg.min_learning_rate)
                new = g["lr"]
        return float(new or 0.0)

    def fit(self, resume: bool = False) -> TrainState:
        cfg, st = self.cfg, self.state
        if resume and self.ckpt_path.exists():
            self.load_checkpoint()
            st = self.state
            log.info("resumed at epoch %d, batch %d (step %d)", st.epoch + 1, st.batch, st.step)
        per_epoch = len(self.train_loader)
        if self.world_size > 1:
            # Gradient averaging is a collective: every rank must take the same number of steps.
            # With G batches, ranks get ceil or floor(G / world); the last G % world batches of an
            # epoch sit out (the shuffle differs per epoch, so no row is left out for good).
            per_epoch = self.train_loader.num_global_batches() // self.world_size
        if cfg.max_batches_per_epoch:
            per_epoch = min(per_epoch, cfg.max_batches_per_epoch)
        while st.epoch < cfg.epochs and not st.stopped:
            self.model.train()
            bar = tqdm(
                total=per_epoch,
                initial=st.batch,
                desc=f"epoch {st.epoch + 1}",
                disable=not (cfg.progress and self.rank == 0),
                leave=False,
                dynamic_ncols=True,
            )
            t0 = time.perf_counter()
            samples = 0
            for batch in self.train_loader.epoch(st.epoch, start_batch=st.batch):
                if st.batch >= per_epoch:
                    break
                loss = self._step(batch)
                if self._step_delay:
                    time.sleep(self._step_delay)
                if not math.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss} at epoch {st.epoch + 1}, batch {st.batch}")
                st.epoch_loss += loss
                st.epoch_batches += 1
                st.batch += 1
                st.step += 1
                samples += len(batch)
                bar.update()
                if st.batch % 10 == 0:
                    bar.set_postfix(loss=f"{st.epoch_loss / st.epoch_batches:.4f}")
                if st.batch % cfg.checkpoint_every_batches == 0 and st.batch < per_epoch:
                    st.train_seconds += time.perf_counter() - t0
                    st.train_samples += samples
                    t0, samples = time.perf_counter(), 0
                    self.save_checkpoint()
            bar.close()
            st.train_seconds += time.perf_counter() - t0
            st.train_samples += samples
            self._end_epoch()
            self.save_checkpoint()
        return st

    def _end_epoch(self) -> None:
        cfg, st = self.cfg, self.state
        record: dict[str, Any] = {"epoch": st.epoch + 1, "train_loss": st.epoch_loss / max(st.epoch_batches, 1)}
        if (st.epoch + 1) % cfg.eval_every_epochs == 0 or st.epoch + 1 == cfg.epochs:
            t = time.perf_counter()
            metrics = self.evaluate(self.valid_loader)
            record["eval_seconds"] = time.perf_counter() - t
            value = monitor_value(cfg.monitor, metrics)
            record["valid"] = metrics
            record["monitor"] = value
            better = st.best is None or (value > st.best if cfg.monitor_mode == "max" else value < st.best)
            if better:
                st.best, st.best_epoch, st.strikes = value, st.epoch + 1, 0
                if self.rank == 0:
                    atomic_torch_save(self.model.state_dict(), self.best_path)
            else:
                st.strikes += 1
                record["lr"] = self._reduce_lr()
                if st.strikes >= cfg.patience:
                    st.stopped = True
            if self.rank == 0:
                summary = " ".join(f"{t}: auc {m['auc']:.6f} logloss {m['logloss']:.6f}" for t, m in metrics.items())
                log.info(
                    "epoch %d  train loss %.6f  valid %s  monitor %.6f%s%s",
                    st.epoch + 1,
                    record["train_loss"],
                    summary,
                    value,
                    "  (best)" if better else f"  lr -> {record.get('lr'):.2e}",
                    "  early stop" if st.stopped else "",
                )
            if self.on_evaluation is not None:
                self.on_evaluation(st.epoch + 1, metrics)
        st.history.append(record)
        st.epoch += 1
        st.batch = 0
        st.epoch_loss = 0.0
        st.epoch_batches = 0

    def restore_best(self) -> bool:
        """Load the best weights (the BARS protocol tests the model chosen on validation).
        Returns False when there are none (no evaluation saved any): the model stays as it is."""
        if self.world_size > 1:
            # Rank 0 alone writes best_model.pt: the others must not read it before it is written,
            # or ranks restore different epochs and the gathered test predictions mix models.
            import torch.distributed as dist

            dist.barrier()
        if self.state.best_epoch is None or not self.best_path.exists():
            return False
        self.model.load_state_dict(torch.load(self.best_path, weights_only=True))
        return True


def _gather_across_ranks(pred: "Predictions") -> "Predictions":
    """All-gather evaluation outputs so every rank computes the same exact AUC."""
    import torch.distributed as dist

    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, pred)
    # A rank can get no evaluation batch at all (fewer batches than ranks): it sends nothing.
    parts = [p for p in parts if p.logits] or parts[:1]
    pred = parts[0]
    return Predictions(
        {t: np.concatenate([p.logits[t] for p in parts]) for t in pred.logits},
        {t: np.concatenate([p.labels[t] for p in parts]) for t in pred.labels},
        np.concatenate([p.groups for p in parts]) if pred.groups is not None else None,
        np.concatenate([p.domains for p in parts]) if pred.domains is not None else None,
    )


@dataclass
class Predictions:
    """Evaluation outputs: logits/labels per task (N,), gAUC groups and domain ids (N,) or None."""

    logits: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    groups: np.ndarray | None = None
    domains: np.ndarray | None = None

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per task: auc, logloss, ne, calibration (+ gauc with groups). With domains also
        ``domains`` (per-domain auc/logloss/rows) and ``domain_mean_auc`` (their plain mean)."""
        out: dict[str, dict[str, Any]] = {}
        for t in self.logits:
            m: dict[str, Any] = evaluate_scores(self.labels[t], self.logits[t], self.groups)
            if self.domains is not None:
                per = {}
                for d in np.unique(self.domains):
                    sel = self.domains == d
                    dm = evaluate_scores(self.labels[t][sel], self.logits[t][sel])
                    per[str(int(d))] = {"auc": dm["auc"], "logloss": dm["logloss"], "rows": int(sel.sum())}
                m["domains"] = per
                aucs = [v["auc"] for v in per.values() if np.isfinite(v["auc"])]
                m["domain_mean_auc"] = float(np.mean(aucs)) if aucs else float("nan")
            out[t] = m
        return out
