"""ESMM: entire space multi-task model (pCTCVR = pCTR x pCVR, both trained over all impressions).

Reference: Ma et al., "Entire Space Multi-Task Model: An Effective Approach for Estimating
Post-Click Conversion Rate", SIGIR 2018, Eq. 1-3: ``p(y=1, z=1 | x) = p(y=1 | x) * p(z=1 | y=1, x)``;
the loss is BCE(click, pCTR) + BCE(conversion, pCTCVR) over *all* impressions, so the CVR tower is
never trained on clicked samples only (no sample selection bias), and both towers share the
embedding table (the paper's feature-representation transfer).

Shapes: embeddings (B, F, D) -> x (B, F*D); CTR tower -> a (B,), CVR tower -> b (B,);
``logits[ctr_task] = a``; ``logits[ctcvr_task] = logit(sigmoid(a) * sigmoid(b))``.
``extras``: ``pctr``, ``pcvr``, ``pctcvr`` (B,) probabilities and ``cvr_logit`` = b (B,).

Numerics: with ``log p = logsigmoid(a) + logsigmoid(b)`` the textbook ``log p - log1p(-exp(log p))``
loses everything once ``log p`` rounds to 0 in float32 (a, b > ~17 gives -inf in ``log(1-p)``).
Multiplying out ``1 - s(a)s(b) = (e^-a + e^-b + e^-(a+b)) * s(a)s(b)`` gives the same logit as
``-logsumexp(-a, -b, -(a+b))``, which is exact, finite for every finite a, b, and has bounded
gradients (a softmax). This is what the model computes.
Departure from the paper's setting: the towers are MLPs over the flattened field embeddings (the
paper pools user-behaviour fields first); the trainer's summed per-task BCE is the ESMM loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


def ctcvr_logit(ctr_logit: torch.Tensor, cvr_logit: torch.Tensor) -> torch.Tensor:
    """logit(sigmoid(a) * sigmoid(b)) = -logsumexp(-a, -b, -a-b), elementwise, stable (see module
    docstring). a, b: (...) -> (...)."""
    a, b = ctr_logit, cvr_logit
    return -torch.logsumexp(torch.stack([-a, -b, -(a + b)], dim=0), dim=0)


@dataclass(frozen=True)
class ESMMConfig:
    embedding_dim: int = 10
    tower_hidden_units: tuple[int, ...] = (360, 200, 80)  # the paper's 360-200-80-2 towers
    hidden_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False
    ctr_task: str | None = None  # default: the schema's first task
    ctcvr_task: str | None = None  # default: the schema's second task


@register("ESMM", kind="multitask", reference="Ma et al., Entire Space Multi-Task Model, SIGIR 2018")
class ESMM(CTRModel):
    config_class = ESMMConfig
    multi_task = True
    test_params: ClassVar[dict[str, Any]] = {"embedding_dim": 8, "tower_hidden_units": (32, 16)}

    def __init__(self, schema: FeatureSchema, config: ESMMConfig):
        super().__init__(schema, config)
        names = self.task_names
        if len(names) != 2:
            raise ValueError(f"ESMM predicts exactly two tasks (CTR and CTCVR); the schema has {names}")
        self.ctr_task = config.ctr_task or names[0]
        self.ctcvr_task = config.ctcvr_task or next(t for t in names if t != self.ctr_task)
        for key, t in (("ctr_task", self.ctr_task), ("ctcvr_task", self.ctcvr_task)):
            if t not in names:
                raise ValueError(f"ESMM {key} '{t}' is not a schema task ({names})")
        if self.ctr_task == self.ctcvr_task:
            raise ValueError(f"ESMM ctr_task and ctcvr_task are both '{self.ctr_task}'")
        kw = dict(activation_name=config.hidden_activations, dropout=config.net_dropout, batch_norm=config.batch_norm)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        d = self.embedding.num_fields * config.embedding_dim
        self.ctr_tower = MLP(d, config.tower_hidden_units, output_dim=1, **kw)
        self.cvr_tower = MLP(d, config.tower_hidden_units, output_dim=1, **kw)

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.embedding(batch).flatten(1)  # (B, F*D), shared by both towers
        a = self.ctr_tower(x).reshape(-1)  # CTR logit (B,)
        b = self.cvr_tower(x).reshape(-1)  # CVR logit (B,)
        pctr, pcvr = torch.sigmoid(a), torch.sigmoid(b)
        return ModelOutput(
            {self.ctr_task: a, self.ctcvr_task: ctcvr_logit(a, b)},
            extras={"pctr": pctr, "pcvr": pcvr, "pctcvr": pctr * pcvr, "cvr_logit": b},
        )
