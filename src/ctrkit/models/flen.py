"""FLEN: field-leveraged embedding network; field-wise bi-interaction over user/item/context groups.

Reference: Chen et al., "FLEN: Leveraging Field for Scalable CTR Prediction", DLP-KDD 2020: fields
are grouped into M "hierarchical fields" (user, item, context); the field-wise bi-interaction
(FwBI) module combines a linear part, an MF part (inter-group products of the groups' summed
embeddings, weighted per group pair, r_ij) and an FM part (intra-group bi-interactions, weighted per
group, r_mm); an MLP runs on all embeddings, and one linear layer scores [FwBI, MLP]. Layout and
defaults from FuxiCTR ``model_zoo/FLEN/src/FLEN.py``: three groups; ``LogisticRegression`` (with
bias) as the linear part; FwBI = ReLU(W [lr, h_MF + h_FM]) with W (D+1) x (D+1) and no bias; MLP
64-64-64 ReLU, no dropout, no batch norm; final ``Linear(h + D + 1, 1, bias=False)``;
embedding_dim 10. BARS has no Frappe_x1 run.

Departures: FuxiCTR reads each feature's group from its ``source`` (user / item / context) in the
feature map; ctrkit schemas have no such attribute, so the groups are model parameters
``user_fields`` and ``item_fields`` (field names); every other field is context. When both are
empty the first field is the user group and the second the item group (Frappe_x1's column order:
user, item, then eight context fields).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.embedding import FeatureEmbedding
from ctrkit.nn.linear import LinearTerm
from ctrkit.nn.mlp import MLP
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class FLENConfig:
    embedding_dim: int = 10
    dnn_hidden_units: tuple[int, ...] = (64, 64, 64)
    dnn_activations: str = "relu"
    net_dropout: float = 0.0
    batch_norm: bool = False
    user_fields: tuple[str, ...] = ()
    item_fields: tuple[str, ...] = ()


def field_groups(schema: FeatureSchema, user: tuple[str, ...], item: tuple[str, ...]) -> list[list[int]]:
    """Field indices (in FeatureEmbedding order) of the user, item and context groups."""
    names = [f.name for f in schema.categorical] + [f.name for f in schema.numeric] + [f.name for f in schema.sequences]
    if not user and not item:
        user, item = tuple(names[:1]), tuple(names[1:2])
    for n in (*user, *item):
        if n not in names:
            raise ValueError(f"FLEN: '{n}' in user_fields/item_fields is not a field (fields: {names})")
    overlap = set(user) & set(item)
    if overlap:
        raise ValueError(f"FLEN: fields {sorted(overlap)} are in both user_fields and item_fields")
    u = [names.index(n) for n in user]
    i = [names.index(n) for n in item]
    c = [k for k in range(len(names)) if k not in u and k not in i]
    return [u, i, c]


@register("FLEN", reference="Chen et al., FLEN: Leveraging Field for Scalable CTR Prediction, DLP-KDD 2020")
class FLEN(CTRModel):
    """e: (B, F, D); groups g = user, item, context with summed embeddings s_g (B, 3, D):

    h_MF = sum_{g<h} r_gh s_g * s_h          (B, D)
    h_FM = sum_g r_g BI(e_g)                 (B, D), BI = bi-interaction within the group
    h_FwBI = ReLU(W [lr(batch), h_MF + h_FM]) (B, D + 1)
    logit = w^T [h_FwBI, MLP(flatten(e))]    (B,)
    """

    config_class = FLENConfig

    def __init__(self, schema: FeatureSchema, config: FLENConfig):
        super().__init__(schema, config)
        D = config.embedding_dim
        self.embedding = FeatureEmbedding(schema, D)
        F = self.embedding.num_fields
        groups = field_groups(schema, tuple(config.user_fields), tuple(config.item_fields))
        member = torch.zeros(3, F)
        for g, idx in enumerate(groups):
            member[g, idx] = 1.0
        self.register_buffer("member", member, persistent=False)  # (3, F) group membership
        self.linear = LinearTerm(schema)
        self.r_ij = nn.Linear(3, 1, bias=False)  # weights of group pairs (u,i), (u,c), (i,c)
        self.r_mm = nn.Linear(3, 1, bias=False)  # weights of groups u, i, c
        self.w_fwbi = nn.Linear(D + 1, D + 1, bias=False)
        self.mlp = MLP(
            F * D,
            config.dnn_hidden_units,
            activation_name=config.dnn_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
        )
        self.w_f = nn.Linear(self.mlp.output_dim + D + 1, 1, bias=False)
        for m in (self.r_ij, self.r_mm, self.w_fwbi, self.w_f):
            nn.init.xavier_normal_(m.weight)

    def fwbi_parts(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """e: (B, F, D) -> (h_MF, h_FM), each (B, D)."""
        s = torch.einsum("gf,bfd->bgd", self.member, e)  # (B, 3, D) group sums
        sq = torch.einsum("gf,bfd->bgd", self.member, e * e)
        bi = 0.5 * (s * s - sq)  # (B, 3, D) intra-group bi-interaction
        mf = torch.stack([s[:, 0] * s[:, 1], s[:, 0] * s[:, 2], s[:, 1] * s[:, 2]], dim=-1)  # (B, D, 3)
        return self.r_ij(mf).squeeze(-1), self.r_mm(bi.transpose(1, 2)).squeeze(-1)

    def forward(self, batch: Batch) -> ModelOutput:
        e = self.embedding(batch)  # (B, F, D)
        h_mf, h_fm = self.fwbi_parts(e)
        lr = self.linear(batch).unsqueeze(-1)  # (B, 1)
        h_fwbi = torch.relu(self.w_fwbi(torch.cat([lr, h_mf + h_fm], dim=-1)))  # (B, D + 1)
        h_l = self.mlp(e.flatten(1))
        return self.output(self.w_f(torch.cat([h_fwbi, h_l], dim=-1)))
