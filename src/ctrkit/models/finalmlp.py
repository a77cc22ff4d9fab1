"""FinalMLP: two MLP streams with stream-specific feature selection, fused by a multi-head
bilinear aggregation.

Reference: Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR Prediction", AAAI 2023.
Structure and defaults from FuxiCTR ``model_zoo/FinalMLP/src/FinalMLP.py``: two MLPs 64-64-64
(ReLU, no dropout, no batch norm) on the gated flat embeddings, feature selection on with
gate MLPs of 64 units and no context fields, one fusion head. Tuned Frappe_x1 setting: BARS
``ranking/ctr/FinalMLP/FinalMLP_frappe_x1`` (MLPs [400] and [100], gates [400] conditioned on
``user`` and ``item``, 5 heads, batch norm, dropout 0.4).

Departures: context fields have their own embedding tables (:class:`ctrkit.nn.final.ContextEmbedding`)
like FuxiCTR, but are looked up from the batch's fused ids; PyTorch default initialisation except
the bilinear fusion weight (FuxiCTR's Xavier-normal scale).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.final import FeatureSelection, InteractionAggregation
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class FinalMLPConfig:
    embedding_dim: int = 10
    mlp1_hidden_units: tuple[int, ...] = (64, 64, 64)
    mlp1_hidden_activations: str = "relu"
    mlp1_dropout: float = 0.0
    mlp1_batch_norm: bool = False
    mlp2_hidden_units: tuple[int, ...] = (64, 64, 64)
    mlp2_hidden_activations: str = "relu"
    mlp2_dropout: float = 0.0
    mlp2_batch_norm: bool = False
    use_fs: bool = True
    fs_hidden_units: tuple[int, ...] = (64,)
    fs1_context: tuple[str, ...] = ()
    fs2_context: tuple[str, ...] = ()
    num_heads: int = 1


@register("FinalMLP", reference="Mao et al., FinalMLP, AAAI 2023")
class FinalMLP(CTRModel):
    """flat = flatten(e) (B, F*D); x1, x2 = FS(flat); logit = fusion(MLP1(x1), MLP2(x2))."""

    config_class = FinalMLPConfig

    def __init__(self, schema: FeatureSchema, config: FinalMLPConfig):
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        feature_dim = self.embedding.num_fields * c.embedding_dim
        self.mlp1 = MLP(
            feature_dim,
            c.mlp1_hidden_units,
            activation_name=c.mlp1_hidden_activations,
            dropout=c.mlp1_dropout,
            batch_norm=c.mlp1_batch_norm,
        )
        self.mlp2 = MLP(
            feature_dim,
            c.mlp2_hidden_units,
            activation_name=c.mlp2_hidden_activations,
            dropout=c.mlp2_dropout,
            batch_norm=c.mlp2_batch_norm,
        )
        self.fs = (
            FeatureSelection(
                schema,
                feature_dim,
                c.embedding_dim,
                hidden_units=c.fs_hidden_units,
                context1=c.fs1_context,
                context2=c.fs2_context,
            )
            if c.use_fs
            else None
        )
        self.fusion = InteractionAggregation(self.mlp1.output_dim, self.mlp2.output_dim, num_heads=c.num_heads)

    def forward(self, batch: Batch) -> ModelOutput:
        flat = self.embedding(batch).flatten(1)  # (B, F*D)
        x1, x2 = self.fs(batch, flat) if self.fs is not None else (flat, flat)
        return self.output(self.fusion(self.mlp1(x1), self.mlp2(x2)))
