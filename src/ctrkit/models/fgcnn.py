"""FGCNN: a CNN generates new fields, and an IPNN-style deep classifier reads raw + new fields.

Reference: Liu et al., "Feature Generation by Convolutional Neural Network for Click-Through Rate
Prediction", WWW 2019. Structure and defaults from FuxiCTR ``model_zoo/FGCNN/src/FGCNN.py``:
the generator has its own embedding table unless ``share_embedding``; 4 conv layers with
14-16-18-20 maps, kernel height 7, pooling 2, 2 recombined channels, tanh, batch norm; the
classifier is an MLP 4096-2048-1024-512 on [flatten(raw + new fields), inner products of all
their pairs]. BARS has no FGCNN run on Frappe_x1 (its FGCNN runs are Criteo_x4, Avazu_x4 and
KKBox_x1).

Departures: height-preserving convolution padding and ceil-mode pooling (see
:class:`ctrkit.nn.fgcnn.FeatureGeneration`); PyTorch default initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.fgcnn import FeatureGeneration, pairwise_inner_products
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class FGCNNConfig:
    embedding_dim: int = 10
    share_embedding: bool = False
    channels: tuple[int, ...] = (14, 16, 18, 20)
    kernel_heights: tuple[int, ...] = (7, 7, 7, 7)
    pooling_sizes: tuple[int, ...] = (2, 2, 2, 2)
    recombined_channels: tuple[int, ...] = (2, 2, 2, 2)
    conv_activation: str = "tanh"
    conv_batch_norm: bool = True
    dnn_hidden_units: tuple[int, ...] = (4096, 2048, 1024, 512)
    dnn_activations: str = "relu"
    dnn_batch_norm: bool = False
    net_dropout: float = 0.0


@register("FGCNN", reference="Liu et al., FGCNN, WWW 2019")
class FGCNN(CTRModel):
    """e (B, F, D) and generated g (B, N, D) -> all = [e, g] (B, F+N, D) ->
    MLP([flatten(all), <all_i, all_j> for i < j]) -> logit."""

    config_class = FGCNNConfig
    # The paper-size classifier (4096-2048-1024-512) makes the common suite's fitting test slow.
    test_params = {"dnn_hidden_units": (64, 32)}

    def __init__(self, schema: FeatureSchema, config: FGCNNConfig):
        super().__init__(schema, config)
        c = config
        self.embedding = FeatureEmbedding(schema, c.embedding_dim)
        # The paper keeps the generator's embeddings apart from the classifier's, so the CNN's
        # gradients do not disturb the raw-feature embeddings.
        self.generator_embedding = None if c.share_embedding else FeatureEmbedding(schema, c.embedding_dim)
        F = self.embedding.num_fields
        self.generator = FeatureGeneration(
            F,
            c.embedding_dim,
            channels=c.channels,
            kernel_heights=c.kernel_heights,
            pooling_sizes=c.pooling_sizes,
            recombined_channels=c.recombined_channels,
            activation_name=c.conv_activation,
            batch_norm=c.conv_batch_norm,
        )
        total = F + self.generator.num_new_fields
        self.dnn = MLP(
            total * (total - 1) // 2 + total * c.embedding_dim,
            c.dnn_hidden_units,
            activation_name=c.dnn_activations,
            dropout=c.net_dropout,
            batch_norm=c.dnn_batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        g_in = e if self.generator_embedding is None else self.generator_embedding(batch)
        fields = torch.cat([e, self.generator(g_in)], dim=1)  # (B, F+N, D)
        x = torch.cat([fields.flatten(1), pairwise_inner_products(fields)], dim=1)
        return self.output(self.dnn(x))
