"""Shared layers. Models are built from these parts; a layer used by two models lives here."""

from ctrkit.nn.embedding import Embedding, FeatureEmbedding, FusedEmbedding, masked_mean, set_sparse_embeddings
from ctrkit.nn.mlp import MLP, activation

__all__ = ["Embedding", "FeatureEmbedding", "FusedEmbedding", "MLP", "activation", "masked_mean", "set_sparse_embeddings"]
