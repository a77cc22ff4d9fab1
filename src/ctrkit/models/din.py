"""DIN: Deep Interest Network, target attention over the behaviour sequence.

Reference: Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018; details
as FuxiCTR ``model_zoo/DIN/src/DIN.py`` (``DIN_Attention``: local activation unit on
``[q, k, q-k, q*k]``, ``use_softmax=False``).

Structure, with E = ``embedding_dim``, D = E x (number of paired sequence fields)::

    target  (B, D)      embedding of ``target_field`` (e.g. item_id [+ item_cat])
    history (B, L, D)   embeddings of ``sequence_field`` (e.g. hist_items [+ hist_cats]), mask (B, L)
    w_i   = LocalActivationUnit([q, k_i, q - k_i, q * k_i])     (B, L), 0 on padding, no softmax
    v_U   = sum_i w_i k_i                                        (B, D), zeros for an empty history
    logit = MLP([other field embeddings (B, F_other * E), v_U])  (Dice activations by default)

With several pairs (``sequence_field: [[a, b], [c]]``) each pair has its own activation unit and
contributes its own v_U to the MLP input.

"Other" fields are every field but the paired sequences (the target included), embedded as DNN
does (unpaired sequences mean pooled).

Mini-batch aware regularisation (paper Sec. 5.1) is not a model component here: with the trainer's
row-sparse embeddings, ``ctrkit.train.optimizers.RowSparseAdam``'s ``weight_decay``
(``training.embedding_regularizer``) adds the L2 gradient only to the rows present in the batch,
which is the paper's mini-batch aware L2 up to the 1/n_j frequency scaling.

Defaults: attention unit 80-40 and MLP 200-80 with Dice as in the paper (FuxiCTR's defaults are 64
and 512-128-64). Departure: Dice's statistics are per mini-batch over real positions only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.mlp import MLP
from ctrkit.nn.sequence import BehaviorInputs, TargetAttention
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class DINConfig:
    embedding_dim: int = 10
    # A name, a list of parallel sequences (concatenated), or a list of lists (several pairs);
    # see ctrkit.nn.sequence.resolve_pairs. Default: the schema's first sequence / its vocab owner.
    sequence_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None
    target_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None
    attention_hidden_units: tuple[int, ...] = (80, 40)
    attention_activation: str = "dice"
    attention_dropout: float = 0.0
    hidden_units: tuple[int, ...] = (200, 80)
    hidden_activations: str = "dice"
    net_dropout: float = 0.0
    batch_norm: bool = False


@register("DIN", kind="sequence", reference="Zhou et al., Deep Interest Network, KDD 2018")
class DIN(CTRModel):
    config_class = DINConfig
    test_params = {"attention_hidden_units": [16], "hidden_units": [32, 16]}

    def __init__(self, schema: FeatureSchema, config: DINConfig):
        super().__init__(schema, config)
        self.inputs = BehaviorInputs(schema, config.embedding_dim, config.sequence_field, config.target_field)
        self.attention = nn.ModuleList(
            TargetAttention(D, config.attention_hidden_units, config.attention_activation, dropout=config.attention_dropout)
            for D in self.inputs.pair_dims
        )
        self.mlp = MLP(
            self.inputs.num_other * config.embedding_dim + sum(self.inputs.pair_dims),
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        v = self.inputs(batch)
        interests = [att(p.target, p.sequence, p.mask) for att, p in zip(self.attention, v.pairs)]  # (B, D) each
        return self.output(self.mlp(torch.cat([v.other.flatten(1), *interests], -1)))
