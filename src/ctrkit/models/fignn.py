"""FiGNN: Feature Interaction Graph Neural Network.

Reference: Li et al., "Fi-GNN: Modeling Feature Interactions via Graph Neural Networks for CTR
Prediction", CIKM 2019: fields are nodes of a fully connected feature graph whose edge weights come
from attention on the node embeddings; ``gnn_layers`` rounds of message passing with node-specific
transforms update the node states (GRU, with residual to the initial embeddings); an attentional
scoring layer gives the logit. Layout and defaults from FuxiCTR ``model_zoo/FiGNN/src/FiGNN.py``
(3 layers, GRU on, residual on, one graph layer per step). Tuned Frappe_x1 settings: BARS
``ranking/ctr/FiGNN/FiGNN_frappe_x1`` (17 layers, no GRU, residual).

Departures: none in structure (the attention over concatenated pairs is computed as a sum of two
projections, which is the same function).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.graph import AttentionalPrediction, FiGNNLayer
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class FiGNNConfig:
    embedding_dim: int = 10
    gnn_layers: int = 3
    use_residual: bool = True
    use_gru: bool = True
    reuse_graph_layer: bool = False


@register("FiGNN", reference="Li et al., Fi-GNN, CIKM 2019")
class FiGNN(CTRModel):
    """e: (B, F, D) -> graph layers: (B, F, D) -> attentional prediction: (B,)."""

    config_class = FiGNNConfig
    test_params = {"gnn_layers": 2}

    def __init__(self, schema: FeatureSchema, config: FiGNNConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        F = self.embedding.num_fields
        self.fignn = FiGNNLayer(
            F,
            config.embedding_dim,
            num_layers=config.gnn_layers,
            reuse_graph_layer=config.reuse_graph_layer,
            use_gru=config.use_gru,
            use_residual=config.use_residual,
        )
        self.fc = AttentionalPrediction(F, config.embedding_dim)

    def forward(self, batch: Batch) -> ModelOutput:
        return self.output(self.fc(self.fignn(self.embedding(batch))))
