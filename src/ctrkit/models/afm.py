"""AFM: attentional factorization machine; an attention network weighs every pair interaction.

Reference: Xiao et al., "Attentional Factorization Machines: Learning the Weight of Feature
Interactions via Attention Networks", IJCAI 2017, Eq. (4)-(5): y = w_0 + linear +
p^T sum_{i<j} a_ij (v_i * v_j), a_ij = softmax(h^T ReLU(W (v_i * v_j) + b)). Layout and defaults
from FuxiCTR ``model_zoo/AFM/src/AFM.py``: ``LogisticRegression(use_bias=True)``, attention_dim
10, attention_dropout [0, 0] (on the attention weights and on the pooled vector), use_attention
True, embedding_dim 10. Tuned Frappe_x1 settings: BARS ``ranking/ctr/AFM/AFM_frappe_x1``
(attention_dim 128, attention_dropout [0.1, 0.1], embedding_regularizer 1e-5; 60,826 parameters).

With ``use_attention=False`` the pair products are summed over pairs and embedding coordinates,
which is FM's pairwise term (FuxiCTR's switch; the attention and projection layers are then not
built). Departures: none.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.fm_family import AttentionalPooling, PairwiseProducts
from ctrkit.nn.linear import LinearTerm
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class AFMConfig:
    embedding_dim: int = 10
    attention_dim: int = 10
    attention_dropout: tuple[float, float] = (0.0, 0.0)
    use_attention: bool = True


@register("AFM", reference="Xiao et al., Attentional Factorization Machines, IJCAI 2017")
class AFM(CTRModel):
    """logit = b + sum_f w_f + AttentionalPooling(pairs(e)).

    e: (B, F, D) -> pair products (B, F(F-1)/2, D) -> attention-weighted sum (B, D) -> (B,).
    """

    config_class = AFMConfig

    def __init__(self, schema: FeatureSchema, config: AFMConfig):
        super().__init__(schema, config)
        self.embedding = FeatureEmbedding(schema, config.embedding_dim)
        self.pairs = PairwiseProducts(self.embedding.num_fields)
        self.linear = LinearTerm(schema)
        self.pooling = (
            AttentionalPooling(config.embedding_dim, config.attention_dim, tuple(config.attention_dropout))
            if config.use_attention
            else None
        )

    def forward(self, batch: Batch) -> ModelOutput:
        x = self.pairs(self.embedding(batch))  # (B, P, D)
        afm = self.pooling(x) if self.pooling is not None else x.sum(dim=(1, 2))
        return self.output(self.linear(batch) + afm)
