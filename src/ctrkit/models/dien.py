"""DIEN: Deep Interest Evolution Network (GRU interest extractor + auxiliary loss + AUGRU).

Reference: Zhou et al., "Deep Interest Evolution Network for Click-Through Rate Prediction",
AAAI 2019; details cross-checked with FuxiCTR ``model_zoo/DIEN``.

Structure, with D the behaviour width (E x number of paired sequence fields), H = ``gru_units``::

    e (B, L, D), mask (B, L), target e_a (B, D)
    interest extractor:  h = GRU(e) over each row's real steps (packed)         (B, L, H)
    auxiliary loss:      for real transitions t -> t+1 (t+1 < length):
                         BCE(sigmoid(aux([h_t, e_{t+1}])), 1) + BCE(sigmoid(aux([h_t, e~_{t+1}])), 0)
                         averaged, times ``aux_loss_alpha``                     (eq. 7)
    attention:           a_t = softmax_{t real}(h_t W e_a)                       (eq. 11)
    interest evolution:  h' = AUGRU(h, a), state after the last real step       (B, H) (eq. 13)
    logit = MLP([other field embeddings, h'])

Negatives e~ are drawn uniformly from the *real* behaviours of the whole mini-batch (i.e. items of
the batch shuffled across rows and positions), so no extra negative-sequence column is needed; the
paper samples them from the item pool per user history (its data ship ``noclk`` sequences).
``aux`` is an MLP on ``[h_t, e]`` (100-50, as the official code's ``auxiliary_net``; the paper
writes an inner product). The auxiliary loss is computed in training mode only (it is None in
eval) and returned as ``ModelOutput.aux_loss``. An empty history gives h' = 0; a batch with no
real transition gives an auxiliary loss of 0. With several pairs each has its own layers
(:class:`InterestEvolution`) and the auxiliary losses add up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ctrkit.batch import Batch
from ctrkit.models.base import CTRModel, ModelOutput
from ctrkit.models.registry import register
from ctrkit.nn.mlp import MLP
from ctrkit.nn.sequence import AUGRU, BehaviorInputs, masked_softmax
from ctrkit.schema import FeatureSchema


@dataclass(frozen=True)
class DIENConfig:
    embedding_dim: int = 10
    sequence_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None  # see DINConfig
    target_field: str | tuple[str, ...] | tuple[tuple[str, ...], ...] | None = None
    gru_units: int | None = None  # default: the behaviour width D
    aux_loss_alpha: float = 1.0
    aux_hidden_units: tuple[int, ...] = (100, 50)
    hidden_units: tuple[int, ...] = (200, 80)
    hidden_activations: str = "dice"
    net_dropout: float = 0.0
    batch_norm: bool = False


class InterestEvolution(nn.Module):
    """DIEN's layers for one behaviour pair: GRU extractor, auxiliary net, attention, AUGRU.

    D: behaviour width, H: GRU width. See the module docstring for the equations.
    """

    def __init__(self, D: int, H: int, aux_hidden_units: tuple[int, ...]):
        super().__init__()
        self.gru = nn.GRU(D, H, batch_first=True)
        self.aux_net = MLP(H + D, aux_hidden_units, activation_name="sigmoid", output_dim=1)
        self.att = nn.Linear(D, H, bias=False)  # W of a_t ~ exp(h_t W e_a)
        self.augru = AUGRU(H, H)

    def interests(self, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Interest extractor: (B, L, D) -> (B, L, H), zeros on padded steps."""
        B, L, _ = seq.shape
        lengths = mask.sum(1)
        packed = pack_padded_sequence(seq, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=L)
        return h * mask.unsqueeze(-1).to(h.dtype)

    def auxiliary_loss(self, h: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Next-behaviour vs sampled-negative BCE over real transitions (scalar, unweighted)."""
        valid = mask[:, 1:]  # transition t -> t+1 exists iff step t+1 is real
        n = int(valid.sum())
        if n == 0:
            return h.sum() * 0.0  # no transition in the batch: 0, graph kept
        b_idx, t_idx = valid.nonzero(as_tuple=True)
        state = h[b_idx, t_idx]  # (n, H)
        pos = seq[b_idx, t_idx + 1]  # (n, D)
        pool = seq[mask]  # (N, D) every real behaviour of the batch
        neg = pool[torch.randint(pool.shape[0], (n,), device=seq.device)]
        logits = self.aux_net(torch.cat([torch.cat([state, pos], -1), torch.cat([state, neg], -1)], 0)).squeeze(-1)
        target = torch.cat([torch.ones(n, device=seq.device), torch.zeros(n, device=seq.device)])
        return F.binary_cross_entropy_with_logits(logits, target) * 2.0  # pos term + neg term

    def evolve(self, target: torch.Tensor, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention + AUGRU: (B, D), (B, L, H), (B, L) -> (B, H)."""
        a = masked_softmax((h * self.att(target).unsqueeze(1)).sum(-1), mask)  # (B, L)
        return self.augru(h, a, mask)


@register("DIEN", kind="sequence", reference="Zhou et al., Deep Interest Evolution Network, AAAI 2019")
class DIEN(CTRModel):
    config_class = DIENConfig
    test_params = {"aux_hidden_units": [8], "hidden_units": [32, 16]}
    # AUGRU loops over the positions: a traced form runs as many steps as it was traced with.
    export_full_length = True

    def __init__(self, schema: FeatureSchema, config: DIENConfig):
        super().__init__(schema, config)
        self.inputs = BehaviorInputs(schema, config.embedding_dim, config.sequence_field, config.target_field)
        widths = [config.gru_units or D for D in self.inputs.pair_dims]
        self.evolution = nn.ModuleList(
            InterestEvolution(D, H, config.aux_hidden_units) for D, H in zip(self.inputs.pair_dims, widths)
        )
        self.mlp = MLP(
            self.inputs.num_other * config.embedding_dim + sum(widths),
            config.hidden_units,
            activation_name=config.hidden_activations,
            dropout=config.net_dropout,
            batch_norm=config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> ModelOutput:
        v = self.inputs(batch)
        finals, aux = [], None
        for layer, p in zip(self.evolution, v.pairs):
            h = layer.interests(p.sequence, p.mask)
            finals.append(layer.evolve(p.target, h, p.mask))
            if self.training and self.config.aux_loss_alpha > 0:
                a = self.config.aux_loss_alpha * layer.auxiliary_loss(h, p.sequence, p.mask)
                aux = a if aux is None else aux + a
        logit = self.mlp(torch.cat([v.other.flatten(1), *finals], -1))
        return ModelOutput({self.task: logit.reshape(-1)}, aux_loss=aux)
