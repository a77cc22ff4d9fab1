"""FuxiCTR side of benchmarks/frappe_speed.py (run with the fuxictr venv's python).

PyPI's fuxictr 2.3.10 ships layers, the data pipeline and BaseModel but no model_zoo: AFM, FmFM, HOFM,
DCN (and CrossNet), DCNv2 (and CrossNetV2, its crossnet_only form), xDeepFM, AutoInt(+), FiBiNET,
MaskNet (parallel) and FinalNet below are thin classes written against fuxictr's public layers
with the structure of FuxiCTR's model_zoo files (model_zoo/AFM, FmFM, HOFM, DCN/DCN_torch, DCNv2,
xDeepFM, AutoInt, FiBiNET, MaskNet, FinalNet). Blocks that model_zoo defines in the model file
itself (AutoInt's MultiHeadSelfAttention, MaskNet's MaskBlock,
FinalNet's FeatureGating / FinalBlock / FactorizedInteraction) are re-stated here.

    --prepare                       FeatureProcessor + build_dataset over the Frappe CSVs (once)
    --model NAME --config JSON      one timed run: prints one JSON line
    --model NAME --config JSON --fit
                                    fuxictr's own fit (BARS protocol) and test metrics, no timing:
                                    the last line of stdout is JSON (fuxictr's progress bars
                                    precede it), per-epoch metrics go to stderr. Shows what
                                    FuxiCTR itself reaches on the same data and seed.

Timed part (wall clock, and CPU time of this, the training, thread): ``--epochs`` passes
(``--steps`` steps each, or the whole epoch) of ``BaseModel.train_step`` (zero_grad, forward, loss +
FuxiCTR's regularisation term, backward, clip_grad_norm_ 10, Adam step) plus ``loss.item()`` per
step, exactly the body of ``BaseModel.train_epoch``, over the train batches of fuxictr's own
RankDataLoader (parquet / Ray Data), which are materialised before the clock starts: FuxiCTR's
loader is left out of its figure (its time for one pass is reported as ``loader_s``), so the
FuxiCTR figure is its model step only, with no evaluation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from itertools import combinations
from pathlib import Path

import torch
from torch import nn

from fuxictr.features import FeatureMap
from fuxictr.preprocess import FeatureProcessor, build_dataset
from fuxictr.pytorch.dataloaders import RankDataLoader
from fuxictr.pytorch.layers import (BilinearInteractionV2, CompressedInteractionNet, CrossNet, CrossNetV2, FeatureEmbedding,
                                    InnerProductInteraction, LogisticRegression, MLP_Block, ScaledDotProductAttention, SqueezeExcitation)
from fuxictr.pytorch.models import BaseModel
from fuxictr.pytorch.torch_utils import get_activation, seed_everything

FIELDS = ["user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city"]
DATASET_ID = "frappe_x1"


class _Model(BaseModel):
    """BaseModel + the three lines every model_zoo ``__init__`` ends with."""

    def _finish(self, kwargs, learning_rate):
        self.compile(kwargs["optimizer"], kwargs["loss"], learning_rate)
        self.reset_parameters()
        self.model_to_device()


class DCN(_Model):
    def __init__(self, feature_map, embedding_dim=10, dnn_hidden_units=(), dnn_activations="ReLU", num_cross_layers=3,
                 net_dropout=0, batch_norm=False, learning_rate=1e-3, **kwargs):
        super().__init__(feature_map, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        input_dim = feature_map.sum_emb_out_dim()
        # No hidden units is BARS's CrossNet row: the cross part alone feeds the output layer.
        self.dnn = MLP_Block(input_dim=input_dim, output_dim=None, hidden_units=list(dnn_hidden_units),
                             hidden_activations=dnn_activations, output_activation=None, dropout_rates=net_dropout,
                             batch_norm=batch_norm) if dnn_hidden_units else None
        self.crossnet = CrossNet(input_dim, num_cross_layers)
        self.fc = nn.Linear(input_dim + (dnn_hidden_units[-1] if dnn_hidden_units else 0), 1)
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X, flatten_emb=True)
        final_out = self.crossnet(feature_emb)
        if self.dnn is not None:
            final_out = torch.cat([final_out, self.dnn(feature_emb)], dim=-1)
        return {"y_pred": self.output_activation(self.fc(final_out))}


class DCNv2(_Model):
    """model_zoo/DCNv2 without the low-rank mixture: the full-rank cross network and, unless
    ``model_structure`` is ``crossnet_only`` (BARS's CrossNet-V2 row), a stacked or parallel DNN."""

    def __init__(self, feature_map, embedding_dim=10, model_structure="parallel", num_cross_layers=3,
                 stacked_dnn_hidden_units=(), parallel_dnn_hidden_units=(), dnn_activations="ReLU", net_dropout=0,
                 batch_norm=False, learning_rate=1e-3, **kwargs):
        super().__init__(feature_map, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        input_dim = feature_map.sum_emb_out_dim()
        self.model_structure = model_structure
        self.crossnet = CrossNetV2(input_dim, num_cross_layers)
        mlp = dict(output_dim=None, hidden_activations=dnn_activations, output_activation=None,
                   dropout_rates=net_dropout, batch_norm=batch_norm)
        final_dim = input_dim
        if model_structure in ("stacked", "stacked_parallel"):
            self.stacked_dnn = MLP_Block(input_dim=input_dim, hidden_units=list(stacked_dnn_hidden_units), **mlp)
            final_dim = stacked_dnn_hidden_units[-1]
        if model_structure in ("parallel", "stacked_parallel"):
            self.parallel_dnn = MLP_Block(input_dim=input_dim, hidden_units=list(parallel_dnn_hidden_units), **mlp)
            final_dim = final_dim + parallel_dnn_hidden_units[-1]
        self.fc = nn.Linear(final_dim, 1)
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X, flatten_emb=True)
        cross_out = self.crossnet(feature_emb)
        if self.model_structure == "crossnet_only":
            final_out = cross_out
        elif self.model_structure == "stacked":
            final_out = self.stacked_dnn(cross_out)
        elif self.model_structure == "parallel":
            final_out = torch.cat([cross_out, self.parallel_dnn(feature_emb)], dim=-1)
        else:
            final_out = torch.cat([self.stacked_dnn(cross_out), self.parallel_dnn(feature_emb)], dim=-1)
        return {"y_pred": self.output_activation(self.fc(final_out))}


class AFM(_Model):
    """model_zoo/AFM: pair-wise element-wise products, attention-weighted sum with dropout on the
    weights and on the pooled vector, plus logistic regression."""

    def __init__(self, feature_map, embedding_dim=10, attention_dim=10, attention_dropout=(0, 0), use_attention=True,
                 learning_rate=1e-3, **kwargs):
        super().__init__(feature_map, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.product_layer = InnerProductInteraction(feature_map.num_fields, output="elementwise_product")
        self.use_attention = use_attention
        if use_attention:
            self.attention = nn.Sequential(nn.Linear(embedding_dim, attention_dim), nn.ReLU(),
                                           nn.Linear(attention_dim, 1, bias=False), nn.Softmax(dim=1))
            self.weight_p = nn.Linear(embedding_dim, 1, bias=False)
            self.dropout1 = nn.Dropout(attention_dropout[0])
            self.dropout2 = nn.Dropout(attention_dropout[1])
        self.lr_layer = LogisticRegression(feature_map, use_bias=True)
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        products = self.product_layer(self.embedding_layer(X))  # (B, P, D)
        if self.use_attention:
            weights = self.dropout1(self.attention(products))
            afm_out = self.weight_p(self.dropout2((weights * products).sum(dim=1)))
        else:
            afm_out = products.flatten(start_dim=1).sum(dim=-1, keepdim=True)
        return {"y_pred": self.output_activation(self.lr_layer(X) + afm_out)}


class FmFM(_Model):
    """model_zoo/FmFM: logistic regression plus, for every field pair (i < j), the product of
    field i's embedding transformed by the pair's weight (a vector, "vectorized", or a matrix,
    "matrixed") with field j's embedding. model_zoo passes its single ``regularizer`` as both
    regularisers; here they come from the config's training section, as for every model."""

    def __init__(self, feature_map, embedding_dim=10, field_interaction_type="matrixed", learning_rate=1e-3, **kwargs):
        super().__init__(feature_map, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        num_fields = feature_map.num_fields
        pairs = num_fields * (num_fields - 1) // 2
        self.field_interaction_type = field_interaction_type
        shape = (pairs, embedding_dim) if field_interaction_type == "vectorized" else (pairs, embedding_dim, embedding_dim)
        self.interaction_weight = nn.Parameter(torch.Tensor(*shape))
        nn.init.xavier_normal_(self.interaction_weight)
        self.lr_layer = LogisticRegression(feature_map)
        self.triu_index = torch.triu_indices(num_fields, num_fields, offset=1)
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        emb = self.embedding_layer(X)
        left = torch.index_select(emb, 1, self.triu_index[0])
        right = torch.index_select(emb, 1, self.triu_index[1])
        if self.field_interaction_type == "vectorized":
            left = left * self.interaction_weight
        else:
            left = torch.matmul(left.unsqueeze(2), self.interaction_weight).squeeze(2)
        y_pred = (left * right).sum(dim=-1).sum(dim=-1, keepdim=True) + self.lr_layer(X)
        return {"y_pred": self.output_activation(y_pred)}


class HOFM(_Model):
    """model_zoo/HOFM: logistic regression plus the order-2 inner products and, for each order
    3..m, the sum over field combinations of the element-wise products, each order with its own
    embedding table (reuse_embedding False)."""

    def __init__(self, feature_map, embedding_dim=10, order=3, reuse_embedding=False, learning_rate=1e-3, **kwargs):
        super().__init__(feature_map, **kwargs)
        self.order = order
        self.embedding_layers = nn.ModuleList([FeatureEmbedding(feature_map, embedding_dim) for _ in range(order - 1)])
        self.inner_product_layer = InnerProductInteraction(feature_map.num_fields)
        self.lr_layer = LogisticRegression(feature_map, use_bias=True)
        self.combos = {i: [torch.LongTensor(ix) for ix in zip(*combinations(range(feature_map.num_fields), i))]
                       for i in range(3, order + 1)}
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        y_pred = self.lr_layer(X)
        for i in range(2, self.order + 1):
            emb = self.embedding_layers[i - 2](X)
            if i == 2:
                y_pred = y_pred + self.inner_product_layer(emb)
            else:
                prod = torch.index_select(emb, 1, self.combos[i][0])
                for idx in self.combos[i][1:]:
                    prod = prod * torch.index_select(emb, 1, idx)
                y_pred = y_pred + prod.sum((1, 2)).view(-1, 1)
        return {"y_pred": self.output_activation(y_pred)}


class xDeepFM(_Model):
    def __init__(self, feature_map, embedding_dim=10, dnn_hidden_units=(), dnn_activations="ReLU", cin_hidden_units=(16,),
                 net_dropout=0, batch_norm=False, learning_rate=1e-3, **kwargs):
        super().__init__(feature_map, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.dnn = MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1, hidden_units=list(dnn_hidden_units),
                             hidden_activations=dnn_activations, output_activation=None, dropout_rates=net_dropout,
                             batch_norm=batch_norm)
        self.lr_layer = LogisticRegression(feature_map, use_bias=False)
        self.cin = CompressedInteractionNet(feature_map.num_fields, list(cin_hidden_units), output_dim=1)
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X)
        y_pred = self.lr_layer(X) + self.cin(feature_emb)
        y_pred += self.dnn(feature_emb.flatten(start_dim=1))
        return {"y_pred": self.output_activation(y_pred)}


class MultiHeadSelfAttention(nn.Module):
    """model_zoo/AutoInt's block: Q/K/V projections, fuxictr's ScaledDotProductAttention, residual,
    LayerNorm, ReLU."""

    def __init__(self, input_dim, attention_dim, num_heads, dropout_rate, use_residual, use_scale, layer_norm):
        super().__init__()
        self.head_dim = attention_dim // num_heads
        self.num_heads = num_heads
        self.use_residual = use_residual
        self.scale = self.head_dim ** 0.5 if use_scale else None
        self.W_q = nn.Linear(input_dim, attention_dim, bias=False)
        self.W_k = nn.Linear(input_dim, attention_dim, bias=False)
        self.W_v = nn.Linear(input_dim, attention_dim, bias=False)
        self.W_res = nn.Linear(input_dim, attention_dim, bias=False) if use_residual and input_dim != attention_dim else None
        self.dot_attention = ScaledDotProductAttention(dropout_rate)
        self.layer_norm = nn.LayerNorm(attention_dim) if layer_norm else None

    def forward(self, X):
        residual = X
        b = X.size(0)
        q, k, v = (w(X).view(b, -1, self.num_heads, self.head_dim).transpose(1, 2) for w in (self.W_q, self.W_k, self.W_v))
        output, _ = self.dot_attention(q, k, v, scale=self.scale)
        output = output.transpose(1, 2).contiguous().view(b, -1, self.num_heads * self.head_dim)
        if self.W_res is not None:
            residual = self.W_res(residual)
        if self.use_residual:
            output += residual
        if self.layer_norm is not None:
            output = self.layer_norm(output)
        return output.relu()


class AutoInt(_Model):
    def __init__(self, feature_map, embedding_dim=10, dnn_hidden_units=(), dnn_activations="ReLU", attention_layers=2,
                 num_heads=1, attention_dim=8, net_dropout=0, batch_norm=False, layer_norm=False, use_scale=False,
                 use_wide=False, use_residual=True, learning_rate=1e-3, **kwargs):
        super().__init__(feature_map, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.lr_layer = LogisticRegression(feature_map, use_bias=False) if use_wide else None
        self.dnn = MLP_Block(input_dim=feature_map.sum_emb_out_dim(), output_dim=1, hidden_units=list(dnn_hidden_units),
                             hidden_activations=dnn_activations, output_activation=None, dropout_rates=net_dropout,
                             batch_norm=batch_norm) if dnn_hidden_units else None
        self.self_attention = nn.Sequential(*[
            MultiHeadSelfAttention(embedding_dim if i == 0 else attention_dim, attention_dim, num_heads, net_dropout,
                                   use_residual, use_scale, layer_norm) for i in range(attention_layers)])
        self.fc = nn.Linear(feature_map.num_fields * attention_dim, 1)
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X)
        y_pred = self.fc(torch.flatten(self.self_attention(feature_emb), start_dim=1))
        if self.dnn is not None:
            y_pred += self.dnn(feature_emb.flatten(start_dim=1))
        if self.lr_layer is not None:
            y_pred += self.lr_layer(X)
        return {"y_pred": self.output_activation(y_pred)}


class FiBiNET(_Model):
    def __init__(self, feature_map, embedding_dim=10, hidden_units=(), hidden_activations="ReLU", excitation_activation="ReLU",
                 reduction_ratio=3, bilinear_type="field_interaction", net_dropout=0, batch_norm=False, learning_rate=1e-3,
                 **kwargs):
        super().__init__(feature_map, **kwargs)
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        n = feature_map.num_fields
        self.senet_layer = SqueezeExcitation(n, reduction_ratio, excitation_activation)
        self.bilinear_interaction1 = BilinearInteractionV2(n, embedding_dim, bilinear_type)
        self.bilinear_interaction2 = BilinearInteractionV2(n, embedding_dim, bilinear_type)
        self.lr_layer = LogisticRegression(feature_map, use_bias=False)
        self.dnn = MLP_Block(input_dim=n * (n - 1) * embedding_dim, output_dim=1, hidden_units=list(hidden_units),
                             hidden_activations=hidden_activations, output_activation=None, dropout_rates=net_dropout,
                             batch_norm=batch_norm)
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X)
        senet_emb = self.senet_layer(feature_emb)
        comb = torch.cat([self.bilinear_interaction1(feature_emb), self.bilinear_interaction2(senet_emb)], dim=1)
        y_pred = self.lr_layer(X) + self.dnn(torch.flatten(comb, start_dim=1))
        return {"y_pred": self.output_activation(y_pred)}


class MaskBlock(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, hidden_activation, reduction_ratio, dropout_rate, layer_norm):
        super().__init__()
        self.mask_layer = nn.Sequential(nn.Linear(input_dim, int(hidden_dim * reduction_ratio)), nn.ReLU(),
                                        nn.Linear(int(hidden_dim * reduction_ratio), hidden_dim))
        layers = [nn.Linear(hidden_dim, output_dim, bias=False)]
        if layer_norm:
            layers.append(nn.LayerNorm(output_dim))
        layers.append(get_activation(hidden_activation))
        if dropout_rate > 0:
            layers.append(nn.Dropout(p=dropout_rate))
        self.hidden_layer = nn.Sequential(*layers)

    def forward(self, V_emb, V_hidden):
        return self.hidden_layer(self.mask_layer(V_emb) * V_hidden)


class MaskNet(_Model):
    """model_zoo/MaskNet with ``model_type: ParallelMaskNet`` (the BARS Frappe setting)."""

    def __init__(self, feature_map, embedding_dim=10, dnn_hidden_units=(), dnn_hidden_activations="ReLU",
                 model_type="ParallelMaskNet", parallel_num_blocks=1, parallel_block_dim=64, reduction_ratio=1,
                 net_dropout=0, emb_layernorm=True, net_layernorm=True, learning_rate=1e-3, **kwargs):
        super().__init__(feature_map, **kwargs)
        assert model_type == "ParallelMaskNet", model_type
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        self.num_fields = n = feature_map.num_fields
        d = n * embedding_dim
        self.mask_blocks = nn.ModuleList([MaskBlock(d, d, parallel_block_dim, dnn_hidden_activations, reduction_ratio,
                                                    net_dropout, net_layernorm) for _ in range(parallel_num_blocks)])
        self.dnn = MLP_Block(input_dim=parallel_block_dim * parallel_num_blocks, output_dim=1,
                             hidden_units=list(dnn_hidden_units), hidden_activations=dnn_hidden_activations,
                             output_activation=self.output_activation, dropout_rates=net_dropout)
        self.emb_norm = nn.ModuleList(nn.LayerNorm(embedding_dim) for _ in range(n)) if emb_layernorm else None
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X)
        if self.emb_norm is not None:
            V_hidden = torch.cat([self.emb_norm[i](f) for i, f in enumerate(feature_emb.chunk(self.num_fields, dim=1))], dim=1)
        else:
            V_hidden = feature_emb
        V_emb, V_hidden = feature_emb.flatten(start_dim=1), V_hidden.flatten(start_dim=1)
        return {"y_pred": self.dnn(torch.cat([blk(V_emb, V_hidden) for blk in self.mask_blocks], dim=-1))}


class FeatureGating(nn.Module):
    def __init__(self, num_fields):
        super().__init__()
        self.linear = nn.Linear(num_fields, num_fields)

    def init_weights(self):
        nn.init.zeros_(self.linear.weight)
        nn.init.ones_(self.linear.bias)

    def forward(self, feature_emb):  # gate_residual="concat"
        gates = self.linear(feature_emb.transpose(1, 2)).transpose(1, 2)
        return torch.cat([feature_emb, feature_emb * gates], dim=1)


class FactorizedInteraction(nn.Module):
    def __init__(self, input_dim, output_dim, residual_type="sum"):
        super().__init__()
        self.residual_type = residual_type
        self.linear = nn.Linear(input_dim, output_dim * 2 if residual_type == "sum" else output_dim)

    def forward(self, x):
        h2, h1 = torch.chunk(self.linear(x), chunks=2, dim=-1)
        return torch.cat([h2, h1 * h2], dim=-1) if self.residual_type == "concat" else h2 + h1 * h2


class FinalBlock(nn.Module):
    def __init__(self, input_dim, hidden_units, hidden_activations, dropout_rates, batch_norm, residual_type):
        super().__init__()
        units = [input_dim] + list(hidden_units)
        self.layer = nn.ModuleList(FactorizedInteraction(a, b, residual_type) for a, b in zip(units, units[1:]))
        self.norm = nn.ModuleList(nn.BatchNorm1d(b) for b in units[1:]) if batch_norm else nn.ModuleList()
        self.dropout = nn.ModuleList(nn.Dropout(dropout_rates) for _ in units[1:]) if dropout_rates > 0 else nn.ModuleList()
        self.activation = nn.ModuleList(get_activation(hidden_activations) for _ in units[1:])

    def forward(self, X):
        for i in range(len(self.layer)):
            X = self.layer[i](X)
            if len(self.norm) > i:
                X = self.norm[i](X)
            if self.activation[i] is not None:
                X = self.activation[i](X)
            if len(self.dropout) > i:
                X = self.dropout[i](X)
        return X


class FinalNet(_Model):
    """model_zoo/FinalNet with ``block_type: 2B`` (the BARS Frappe setting), its add_loss included."""

    def __init__(self, feature_map, embedding_dim=10, block_type="2B", batch_norm=True, use_feature_gating=False,
                 block1_hidden_units=(64,), block1_hidden_activations=None, block1_dropout=0, block2_hidden_units=(64,),
                 block2_hidden_activations=None, block2_dropout=0, residual_type="concat", learning_rate=1e-3, **kwargs):
        super().__init__(feature_map, **kwargs)
        assert block_type == "2B", block_type
        self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
        n = feature_map.num_fields
        self.feature_gating = FeatureGating(n) if use_feature_gating else None
        self.block1 = FinalBlock(embedding_dim * n * (2 if use_feature_gating else 1), block1_hidden_units,
                                 block1_hidden_activations, block1_dropout, batch_norm, residual_type)
        self.fc1 = nn.Linear(block1_hidden_units[-1], 1)
        self.block2 = FinalBlock(embedding_dim * n, block2_hidden_units, block2_hidden_activations, block2_dropout,
                                 batch_norm, residual_type)
        self.fc2 = nn.Linear(block2_hidden_units[-1], 1)
        self._finish(kwargs, learning_rate)

    def forward(self, inputs):
        X = self.get_inputs(inputs)
        feature_emb = self.embedding_layer(X)
        g = self.feature_gating(feature_emb) if self.feature_gating is not None else feature_emb
        y1 = self.fc1(self.block1(g.flatten(start_dim=1)))
        y2 = self.fc2(self.block2(feature_emb.flatten(start_dim=1)))
        return {"y_pred": self.output_activation(0.5 * (y1 + y2)), "y1": y1, "y2": y2}

    def add_loss(self, return_dict, y_true):
        loss = self.loss_fn(return_dict["y_pred"], y_true, reduction="mean")
        y1 = self.output_activation(return_dict["y1"])
        y2 = self.output_activation(return_dict["y2"])
        loss1 = self.loss_fn(y1, return_dict["y_pred"].detach(), reduction="mean")
        loss2 = self.loss_fn(y2, return_dict["y_pred"].detach(), reduction="mean")
        return loss + loss1 + loss2


#: Settings a ctrkit config leaves implicit in the model's name: ctrkit's CrossNetV2 is the cross
#: network alone, which model_zoo/DCNv2 spells ``model_structure: crossnet_only``.
MODEL_DEFAULTS = {"CrossNetV2": {"model_structure": "crossnet_only"}}

MODELS = {"AFM": AFM, "FmFM": FmFM, "HOFM": HOFM, "DCN": DCN, "CrossNet": DCN, "DCNv2": DCNv2, "CrossNetV2": DCNv2, "xDeepFM": xDeepFM, "AutoInt+": AutoInt, "AutoInt": AutoInt, "FiBiNET": FiBiNET,
          "MaskNet": MaskNet, "FinalNet": FinalNet}


def prepare(source: Path, work: Path) -> tuple[dict, FeatureMap, float]:
    """fuxictr's FeatureProcessor + build_dataset over the Frappe CSVs (skipped when its
    feature_map.json exists, as build_dataset does); the settings of BARS's Frappe_x1 dataset config."""
    raw = work / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_src = source / "train.csv" if (source / "train.csv").exists() else source / "train_reconstructed.csv"
    for split, src in (("train", train_src), ("valid", source / "valid.csv"), ("test", source / "test.csv")):
        link = raw / f"{split}.csv"
        if not link.exists():
            link.symlink_to(src.resolve())
    t = time.perf_counter()
    fp = FeatureProcessor(feature_cols=[{"name": FIELDS, "active": True, "dtype": "str", "type": "categorical"}],
                          label_col={"name": "label", "dtype": float}, dataset_id=DATASET_ID, data_root=str(work / "data"))
    train, valid, test = build_dataset(fp, train_data=str(raw / "train.csv"), valid_data=str(raw / "valid.csv"),
                                       test_data=str(raw / "test.csv"), data_format="csv", min_categr_count=1)
    fmap = FeatureMap(DATASET_ID, os.path.join(str(work / "data"), DATASET_ID))
    return {"train": train, "valid": valid, "test": test}, fmap, time.perf_counter() - t


def fit_bars(args, fmap: FeatureMap, paths: dict, params: dict, tr: dict) -> None:
    """FuxiCTR's whole training protocol on this data: ``fit`` (per-epoch validation, lr decay,
    early stop, best checkpoint reloaded), then ``evaluate`` on valid and test. Per-epoch lines go to
    stderr through fuxictr's logging; one JSON line goes to stdout."""
    logging.getLogger().setLevel(logging.INFO)
    params = dict(params, verbose=1, monitor="AUC", monitor_mode="max", early_stop_patience=2,
                  reduce_lr_on_plateau=True, save_best_only=True)
    train_gen, valid_gen = RankDataLoader(fmap, stage="train", train_data=paths["train"], valid_data=paths["valid"],
                                          batch_size=tr["batch_size"], shuffle=True, data_format="parquet")
    model = MODELS[args.model](fmap, **params)
    os.makedirs(os.path.dirname(model.checkpoint), exist_ok=True)  # fit's save_weights does not create it
    t = time.perf_counter()
    model.fit(train_gen, epochs=tr.get("epochs", 100), validation_data=valid_gen, max_gradient_norm=10.0)
    fit_s = time.perf_counter() - t
    valid = model.evaluate(valid_gen)
    test_gen = RankDataLoader(fmap, stage="test", test_data=paths["test"], batch_size=tr["batch_size"],
                              shuffle=False, data_format="parquet")
    test = model.evaluate(test_gen)
    print(json.dumps({"side": "fuxictr", "model": args.model, "seed": tr.get("seed", 2021), "epochs": model._epoch_index + 1,
                      "valid_auc": valid["AUC"], "test_auc": test["AUC"], "test_logloss": test["logloss"],
                      "fit_s": fit_s, "parameters": sum(p.numel() for p in model.parameters()),
                      "torch_threads": torch.get_num_threads()}))


def _main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", type=Path, required=True, help="directory with Frappe_x1's CSVs")
    ap.add_argument("--work", type=Path, required=True, help="fuxictr's data directory (built once, then reused)")
    ap.add_argument("--prepare", action="store_true")
    ap.add_argument("--model", default="DCN")
    ap.add_argument("--config", default="{}", help="JSON: {params: model params, training: BARS training settings}")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="steps per epoch (0: the whole epoch)")
    ap.add_argument("--fit", action="store_true",
                    help="train with fuxictr's own BaseModel.fit under the BARS protocol (monitor valid AUC, lr/10 "
                         "on plateau, patience 2, best weights restored) for up to the config's epochs, then "
                         "print valid and test metrics; no timing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    logging.basicConfig(level=logging.WARNING)
    paths, fmap, prep_s = prepare(args.source, args.work)
    if args.prepare:
        print(json.dumps({"prepare_s": prep_s, "paths": paths}))
        return
    cfg = json.loads(args.config)
    tr = cfg["training"]
    seed_everything(tr.get("seed", 2021))
    # FuxiCTR regularisers: a float is an L2 weight; 0 / None is no term at all (BARS's configs
    # write an integer 0, which fuxictr's get_regularizer maps to "none").
    emb_reg = float(tr.get("embedding_regularizer") or 0) or 0
    net_reg = float(tr.get("net_regularizer") or 0) or 0
    params = dict(MODEL_DEFAULTS.get(args.model, {}), **cfg["params"], model_id=args.model.replace("+", "Plus"), gpu=-1, learning_rate=tr["learning_rate"],
                  embedding_regularizer=emb_reg, net_regularizer=net_reg, optimizer="adam", loss="binary_crossentropy",
                  verbose=0, model_root=str(args.work / "ckpt"), metrics=["logloss", "AUC"])
    fmap.load(os.path.join(fmap.data_dir, "feature_map.json"), params)
    if args.fit:
        fit_bars(args, fmap, paths, params, tr)
        return
    train_gen, _ = RankDataLoader(fmap, stage="train", train_data=paths["train"], batch_size=tr["batch_size"],
                                  shuffle=True, data_format="parquet")
    t = time.perf_counter()
    batches = list(train_gen)  # one pass of fuxictr's own loader, outside the timed part
    loader_s = time.perf_counter() - t
    if args.steps:
        batches = batches[:args.steps]
    model = MODELS[args.model](fmap, **params)
    model._max_gradient_norm = 10.0  # fit()'s default, used by train_step
    model.train()
    n, loss_sum = 0, 0.0
    t, cpu0 = time.perf_counter(), time.thread_time()
    for _ in range(args.epochs):
        for b in batches:
            loss_sum += model.train_step(b).item()
            n += len(b["label"])
    train_s, cpu_s = time.perf_counter() - t, time.thread_time() - cpu0
    print(json.dumps({
        "side": "fuxictr", "model": args.model, "train_samples_per_s": n / train_s, "train_s": train_s, "samples": n,
        "cpu_s": cpu_s, "cpu_samples_per_s": n / cpu_s,
        "steps": len(batches) * args.epochs, "loader_s": loader_s, "mean_loss": loss_sum / (len(batches) * args.epochs),
        "parameters": sum(p.numel() for p in model.parameters()), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }))


def main() -> None:
    # Every path (--prepare, --fit, timing) may have started Ray through fuxictr's loader; shut
    # it down on all of them, or its worker processes outlive this one.
    try:
        _main()
    finally:
        try:
            import ray

            ray.shutdown()
        except Exception:
            pass


if __name__ == "__main__":
    main()
