"""SAM: self-attentive (dot-product weighted) field interactions with a linear output.

Reference: Cheng and Xue, "An Analysis of the Self-Attentive Model for CTR Prediction", SIGIR 2021
(arXiv:2105.05563). Structure and defaults from FuxiCTR ``model_zoo/SAM/src/SAM.py``: SAM2E with
concat aggregation, 3 layers (used by SAM3* only), no residual, no dropout. Tuned Frappe_x1
setting: BARS ``ranking/ctr/SAM/SAM_frappe_x1`` (SAM3A, 4 layers, residual, dropout 0.2).

Departures: SAM3A/SAM3E compute sum_j s_ij W_ij and e_i * sum_j s_ij e_j directly instead of
materialising FuxiCTR's (B, F, F, D) tensor (same values, less memory); PyTorch default init for
the K/Q projections and the output layer (FuxiCTR re-initialises Linear layers Xavier-normal).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.sam import Aggregation, InteractionType, SAMBlock
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class SAMConfig:
    embedding_dim: int = 10
    interaction_type: InteractionType = "SAM2E"
    aggregation: Aggregation = "concat"
    num_interaction_layers: int = 3
    use_residual: bool = False
    net_dropout: float = 0.0


@register("SAM", reference="Cheng and Xue, An Analysis of the Self-Attentive Model for CTR Prediction, SIGIR 2021")
class SAM(CTRModel):
    """e (B, F, D) -> SAMBlock -> (B, output_dim) -> linear -> logit (B,)."""

    config_class = SAMConfig
    test_params = {"interaction_type": "SAM3A", "num_interaction_layers": 2, "use_residual": True}

    def __init__(self, schema: FeatureSchema, config: SAMConfig):
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        self.block = SAMBlock(
            c.num_interaction_layers,
            self.embedding.num_fields,
            c.embedding_dim,
            use_residual=c.use_residual,
            interaction_type=c.interaction_type,
            aggregation=c.aggregation,
            dropout=c.net_dropout,
        )
        self.fc = nn.Linear(self.block.output_dim, 1)

    def forward(self, batch: Batch) -> ModelOutput:
        return self.output(self.fc(self.block(self.embedding(batch))))
