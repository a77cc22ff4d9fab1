"""Layers of FinalMLP and FinalNet (the "FINAL" family from Huawei's FuxiCTR team).

FinalMLP: Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR Prediction", AAAI 2023
(feature selection and multi-head bilinear fusion); shapes as FuxiCTR's ``FeatureSelection`` and
``InteractionAggregation`` in ``model_zoo/FinalMLP/src/FinalMLP.py``.

FinalNet: Zhu et al., "FINAL: Factorized Interaction Layer for CTR Prediction", SIGIR 2023; shapes
as FuxiCTR's ``FactorizedInteraction``, ``FinalBlock`` and ``FeatureGating`` in
``model_zoo/FinalNet/src/FinalNet.py`` (the older ``model_zoo/FINAL/src/FINAL.py``, which BARS ran,
calls the gate ``FieldGate``).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from ctrkit.nn.dropout import FastDropout

from ctrkit.batch import Batch, FieldLayout
from ctrkit.nn.embedding import Embedding, masked_mean
from ctrkit.nn.mlp import MLP, activation
from ctrkit.schema import FeatureSchema

# --------------------------------------------------------------------------------- FinalMLP


class ContextEmbedding(nn.Module):
    """Embeddings of a chosen subset of fields, from tables of their own: (B, len(names), D).

    FinalMLP's feature-selection gates are conditioned on a few context fields (e.g. user, item)
    embedded separately from the main embedding (FuxiCTR builds a ``FeatureEmbedding`` with
    ``required_feature_columns``). Only the vocabularies of the named fields get rows; fields that
    share a vocabulary share one table. Numeric fields are value x vector, sequence fields are
    mean pooled, as in :class:`ctrkit.nn.FeatureEmbedding`.
    """

    def __init__(self, schema: FeatureSchema, names: Sequence[str], dim: int, init_std: float = 1e-4):
        super().__init__()
        layout = FieldLayout.from_schema(schema)
        numeric = [f.name for f in schema.numeric]
        self.names = tuple(names)
        self.tables = nn.ModuleDict()
        owner_key: dict[str, str] = {}
        # (kind, column or sequence name, table key, offset) per requested field, in order.
        self._plan: list[tuple[str, int | str, str, int]] = []
        for name in self.names:
            if name in numeric:
                self._plan.append(("numeric", numeric.index(name), "", 0))
                continue
            if name not in layout.field_owner:
                known = list(layout.categorical) + numeric + list(layout.sequences)
                raise ValueError(f"context field '{name}' is not a feature of the schema (features: {known})")
            owner = layout.field_owner[name]
            if owner not in owner_key:
                # Keys are positional: feature names may contain characters ModuleDict rejects.
                owner_key[owner] = f"t{len(owner_key)}"
                table = Embedding(layout.owner_size[owner], dim)
                nn.init.normal_(table.weight, std=init_std)
                self.tables[owner_key[owner]] = table
            kind, where = ("categorical", layout.categorical.index(name)) if name in layout.categorical else ("sequence", name)
            self._plan.append((kind, where, owner_key[owner], layout.offset(name)))
        num_numeric = sum(1 for p in self._plan if p[0] == "numeric")
        self.numeric_weight = nn.Parameter(torch.empty(num_numeric, dim)) if num_numeric else None
        if self.numeric_weight is not None:
            nn.init.normal_(self.numeric_weight, std=init_std)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts, n = [], 0
        for kind, where, key, offset in self._plan:
            if kind == "numeric":
                assert self.numeric_weight is not None and isinstance(where, int)
                parts.append(batch.dense[:, where : where + 1] * self.numeric_weight[n])
                n += 1
            elif kind == "categorical":
                assert isinstance(where, int)
                # Batch ids carry the fused-table offset; this table holds only the owner's rows.
                parts.append(self.tables[key](batch.ids[:, where] - offset))
            else:
                seq = batch.sequences[str(where)]
                parts.append(masked_mean(self.tables[key](seq.values - offset), seq.mask()))
        return torch.stack(parts, dim=1)


class SelectionGate(nn.Module):
    """One stream's gate: 2 * sigmoid(MLP(context)), shape (B, F*D), values in (0, 2).

    With context fields the MLP reads their own embeddings (B, len(context) * D); without, it
    reads a learned bias vector (1, D), so the gate is the same for every example (the paper's
    "no context" setting and FuxiCTR's ``fs*_ctx_bias``).
    """

    def __init__(self, schema: FeatureSchema, feature_dim: int, dim: int, hidden_units: Sequence[int], context: Sequence[str]):
        super().__init__()
        self.context = ContextEmbedding(schema, context, dim) if context else None
        self.bias = None if context else nn.Parameter(torch.zeros(1, dim))
        self.mlp = MLP(dim * max(1, len(context)), hidden_units, activation_name="relu", output_dim=feature_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.context is not None:
            z = self.context(batch).flatten(1)
        else:
            assert self.bias is not None
            # Without context the gate is the same for every row: one (1, feature_dim) row that
            # broadcasts over the batch (the MLP has no dropout or batch norm). Expanding to
            # len(batch) would bake the batch size into a traced export.
            z = self.bias
        # 2 * sigmoid: a neutral gate (logit 0) leaves the embedding unchanged.
        return 2.0 * torch.sigmoid(self.mlp(z))


class FeatureSelection(nn.Module):
    """FinalMLP's stream-specific feature selection: two :class:`SelectionGate` re-weight every
    coordinate of the flat embedding, one for each stream.

    flat: (B, F*D) -> (flat * g1, flat * g2).
    """

    def __init__(
        self,
        schema: FeatureSchema,
        feature_dim: int,
        dim: int,
        *,
        hidden_units: Sequence[int] = (64,),
        context1: Sequence[str] = (),
        context2: Sequence[str] = (),
    ):
        super().__init__()
        self.gate1 = SelectionGate(schema, feature_dim, dim, hidden_units, context1)
        self.gate2 = SelectionGate(schema, feature_dim, dim, hidden_units, context2)

    def forward(self, batch: Batch, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return flat * self.gate1(batch), flat * self.gate2(batch)


class InteractionAggregation(nn.Module):
    """FinalMLP's fusion of the two stream outputs x (B, X) and y (B, Y):

        out = w_x x + w_y y + sum_h x_h^T W_h y_h           (B, output_dim)

    x and y are split into ``num_heads`` equal chunks and each head has its own bilinear W_h
    (X/H x Y/H), which cuts the bilinear parameters by a factor H. With one head it is a full
    bilinear form.
    """

    def __init__(self, x_dim: int, y_dim: int, *, num_heads: int = 1, output_dim: int = 1):
        super().__init__()
        if x_dim % num_heads or y_dim % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide both stream widths ({x_dim}, {y_dim})")
        self.num_heads = num_heads
        self.w_x = nn.Linear(x_dim, output_dim)
        self.w_y = nn.Linear(y_dim, output_dim)
        hx, hy = x_dim // num_heads, y_dim // num_heads
        self.w_xy = nn.Parameter(torch.empty(num_heads, hx, hy, output_dim))
        # FuxiCTR applies xavier_normal_ to the (H*hx*hy, output_dim) matrix; same std here.
        nn.init.normal_(self.w_xy, std=(2.0 / (num_heads * hx * hy + output_dim)) ** 0.5)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        xh = x.reshape(B, self.num_heads, -1)  # (B, H, X/H)
        yh = y.reshape(B, self.num_heads, -1)  # (B, H, Y/H)
        bilinear = torch.einsum("bhx,hxyo,bhy->bo", xh, self.w_xy, yh)
        return self.w_x(x) + self.w_y(y) + bilinear


# --------------------------------------------------------------------------------- FinalNet

ResidualType = Literal["concat", "sum"]


class FactorizedInteraction(nn.Module):
    """FINAL's replacement for a linear layer: one linear map split into halves h1, h2, then

        concat: [h2, h1 * h2]    (linear to output_dim, output_dim must be even)
        sum:    h2 + h1 * h2     (linear to 2 * output_dim)

    x: (B, input_dim) -> (B, output_dim). The product makes each layer a second-order
    polynomial of its input, so stacking K layers reaches order 2^K.
    """

    def __init__(self, input_dim: int, output_dim: int, *, residual_type: ResidualType = "concat", bias: bool = True):
        super().__init__()
        if residual_type == "concat" and output_dim % 2:
            raise ValueError(f"residual_type='concat' needs an even output size, got {output_dim}")
        if residual_type not in ("concat", "sum"):
            raise ValueError(f"residual_type must be 'concat' or 'sum', not '{residual_type}'")
        self.residual_type = residual_type
        self.linear = nn.Linear(input_dim, output_dim if residual_type == "concat" else 2 * output_dim, bias=bias)
        self.output_dim = output_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h2, h1 = self.linear(x).chunk(2, dim=-1)
        if self.residual_type == "concat":
            return torch.cat([h2, h1 * h2], dim=-1)
        return h2 + h1 * h2


class FinalBlock(nn.Module):
    """An MLP whose linear layers are :class:`FactorizedInteraction`: per hidden layer,
    factorized interaction -> [BatchNorm1d] -> [activation] -> [Dropout].

    x: (B, input_dim) -> (B, hidden_units[-1]). ``activation_name=None`` means no activation
    (FuxiCTR's default: the products already make the block non-linear).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_units: Sequence[int],
        *,
        activation_name: str | None = None,
        dropout: float = 0.0,
        batch_norm: bool = True,
        residual_type: ResidualType = "concat",
    ):
        super().__init__()
        if not hidden_units:
            raise ValueError("FinalBlock needs at least one hidden layer")
        layers: list[nn.Module] = []
        d = input_dim
        for h in hidden_units:
            layers.append(FactorizedInteraction(d, h, residual_type=residual_type))
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            if activation_name is not None:
                layers.append(activation(activation_name))
            if dropout > 0:
                layers.append(FastDropout(dropout))
            d = h
        self.net = nn.Sequential(*layers)
        self.output_dim = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FieldGate(nn.Module):
    """FinalNet's feature gating: per embedding coordinate, a linear map across fields gives a
    gate for each field; the block sees the raw fields and the gated ones side by side.

    e: (B, F, D) -> (B, 2F, D) = [e, e * gates]. Initialised to weight 0, bias 1, i.e. an identity
    gate, as FuxiCTR's ``FieldGate.reset_custom_params`` (the newer ``FeatureGating`` defines the
    same init as ``init_weights`` but nothing calls it).
    """

    def __init__(self, num_fields: int):
        super().__init__()
        self.proj = nn.Linear(num_fields, num_fields)
        nn.init.zeros_(self.proj.weight)
        nn.init.ones_(self.proj.bias)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        gates = self.proj(e.transpose(1, 2)).transpose(1, 2)  # (B, F, D)
        return torch.cat([e, e * gates], dim=1)
