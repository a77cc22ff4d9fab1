"""WuKong: stacked layers of factorization-machine and linear-compression blocks, then an MLP.

Reference: Zhang et al., "Wukong: Towards a Scaling Law for Large-Scale Recommendation", ICML 2024
(arXiv:2403.02545): each layer combines an FM block (optimized FM X (X^T Y), LayerNorm, MLP) and a
linear compression block, with a residual and LayerNorm; layers are stacked so layer i captures
interactions up to order 2^i; a final MLP gives the logit. Structure and defaults from FuxiCTR
``model_zoo/WuKong/src/WuKong.py``: embedding_dim 64, 3 layers, project_dim 8, FMB MLP 32-32 to
fmb_dim 40, compression_dim 40, dropout 0.2 on the LCB, final MLP 32-32 (ReLU). No BARS run
exists; the Frappe_x1 config takes FuxiCTR's ``WuKong_default`` template (untuned) with the BARS
Frappe_x1 embedding size 10.

Departures from the paper (as FuxiCTR): FMB and LCB output flat vectors (fmb_dim,
compression_dim) mapped back to F*D by a linear layer before the residual, instead of
n_F + n_L embeddings; the residual therefore needs no projection and every layer keeps F fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.mlp import MLP
from ctrkit.nn.wukong import WuKongLayer
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class WuKongConfig:
    embedding_dim: int = 64
    num_layers: int = 3
    compression_dim: int = 40
    mlp_hidden_units: tuple[int, ...] = (32, 32)
    fmb_units: tuple[int, ...] = (32, 32)
    fmb_dim: int = 40
    project_dim: int = 8
    dropout_rate: float = 0.2
    hidden_activations: str = "relu"


@register("WuKong", reference="Zhang et al., Wukong: Towards a Scaling Law for Large-Scale Recommendation, ICML 2024")
class WuKong(CTRModel):
    """e (B, F, D) -> num_layers WuKong layers (B, F, D) -> MLP(flatten) -> (B,)."""

    config_class = WuKongConfig
    test_params = {"embedding_dim": 8, "num_layers": 2, "fmb_units": (16,), "fmb_dim": 8, "compression_dim": 8, "dropout_rate": 0.0}

    def __init__(self, schema: FeatureSchema, config: WuKongConfig):
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        F = self.embedding.num_fields
        self.layers = nn.Sequential(
            *[
                WuKongLayer(
                    F,
                    c.embedding_dim,
                    project_dim=c.project_dim,
                    fmb_units=c.fmb_units,
                    fmb_dim=c.fmb_dim,
                    compressed_dim=c.compression_dim,
                    dropout=c.dropout_rate,
                )
                for _ in range(c.num_layers)
            ]
        )
        self.mlp = MLP(F * c.embedding_dim, c.mlp_hidden_units, activation_name=c.hidden_activations, output_dim=1)

    def forward(self, batch: Batch) -> ModelOutput:
        return self.output(self.mlp(self.layers(self.embedding(batch)).flatten(1)))
