"""Shared layers. Models are built from these parts; a layer used by two models lives here."""

from ctrkit.nn.embedding import FeatureEmbedding, FusedEmbedding, masked_mean, set_sparse_embeddings
from ctrkit.nn.mlp import MLP, activation

__all__ = ["FeatureEmbedding", "FusedEmbedding", "MLP", "activation", "masked_mean", "set_sparse_embeddings"]
