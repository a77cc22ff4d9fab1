"""Layers for behaviour-sequence models (DIN, DIEN, BST, SDIM, ETA).

Shapes: B batch, L padded sequence length (the longest row of the batch), D the width of one
behaviour (``embedding_dim`` times the number of parallel sequence fields of the pair), H hidden.
Every layer here takes a (B, L) bool ``mask`` (True on real items) and never lets a padded slot
change a real output; a row with no real items (an empty history) gives zeros, never NaN.

* :class:`BehaviorInputs` - embeds a batch for a sequence model: the (target, sequence) pair(s)
  chosen by ``sequence_field`` / ``target_field`` (:func:`resolve_pairs`) and every other field
  as DNN does.
* :class:`Dice` (in :mod:`ctrkit.nn.mlp`, re-exported here) - DIN's data-adaptive activation;
  ``MLP(activation_name="dice")`` builds an MLP with it.
* :class:`TargetAttention` - DIN's local activation unit and weighted sum pooling (no softmax).
* :class:`MultiHeadTargetAttention` - scaled dot-product target attention with softmax (ETA).
* :class:`AUGRU` - DIEN's GRU with attentional update gate.
* :class:`SimHash` and :func:`hamming_topk` / :func:`collision_mean` - SimHash LSH (SDIM, ETA).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import torch
from torch import nn

from ctrkit.batch import Batch
from ctrkit.errors import ConfigError
from ctrkit.nn.dropout import FastDropout
from ctrkit.nn.embedding import FeatureEmbedding, masked_mean
from ctrkit.nn.mlp import MLP, Dice  # noqa: F401  (Dice re-exported)
from ctrkit.schema import FeatureSchema


# --------------------------------------------------------------------------- inputs
FieldSpec = Union[str, tuple[str, ...], tuple[tuple[str, ...], ...], None]
"""A model config's ``sequence_field`` / ``target_field``: a name; a list of names (one pair whose
parallel fields are concatenated); or a list of lists (several pairs)."""


def _as_pairs(value) -> list[tuple[str, ...]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [(value,)]
    value = list(value)
    if all(isinstance(v, str) for v in value):
        return [tuple(value)]
    return [(v,) if isinstance(v, str) else tuple(v) for v in value]


def resolve_pairs(schema: FeatureSchema, sequence_field: FieldSpec, target_field: FieldSpec) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The (sequence fields, target fields) behaviour pairs of a model's config.

    ``sequence_field``: a sequence name; or several *parallel* sequences (same lengths row by row,
    e.g. ``[hist_items, hist_cats]``) whose embeddings are concatenated per position, as FuxiCTR's
    tuple fields and the DIN paper's goods_id + cate_id behaviours; or a list of such groups, one
    pair each (e.g. ``[[hist_items, hist_cats], [hist_shops]]``). Default: the schema's first
    sequence. ``target_field``: the same structure over single-valued categorical fields. Default:
    each sequence's ``share_vocab_with`` owner. Each pair gets its own pooling layers; padding of
    a pair is taken from its first sequence's lengths.
    """
    key_s, key_t = "model.params.sequence_field", "model.params.target_field"
    seqs = _as_pairs(sequence_field)
    if seqs is None:
        if not schema.sequences:
            raise ConfigError("a sequence model needs a sequence feature in the schema", key=key_s)
        seqs = [(schema.sequences[0].name,)]
    seq_names = {f.name for f in schema.sequences}
    flat = [s for group in seqs for s in group]
    for s in flat:
        if s not in seq_names:
            raise ConfigError(f"'{s}' is not a sequence feature (sequences: {sorted(seq_names)})", key=key_s)
    if len(set(flat)) != len(flat):
        raise ConfigError(f"a sequence appears twice in {flat}", key=key_s)
    targets = _as_pairs(target_field)
    if targets is None:
        targets = [tuple(schema.vocab_owner(s) for s in group) for group in seqs]
        for s in flat:
            if schema.vocab_owner(s) == s:
                raise ConfigError(f"sequence '{s}' has no share_vocab_with owner; set target_field", key=key_t)
    cat_names = [f.name for f in schema.categorical]
    for t in (t for group in targets for t in group):
        if t not in cat_names:
            raise ConfigError(f"'{t}' is not a single-valued categorical feature", key=key_t)
    if [len(g) for g in targets] != [len(g) for g in seqs]:
        raise ConfigError(f"target_field {targets} does not match sequence_field {seqs} in shape", key=key_t)
    return list(zip(seqs, targets))


@dataclass(frozen=True)
class PairView:
    """One behaviour pair of a batch.

    target:   (B, D) the target's embedding (target fields concatenated), D = E * len(pair).
    sequence: (B, L, D) behaviour embeddings (L >= 1; padded slots hold the padding row's
              embedding and must be masked).
    mask:     (B, L) bool, True on real behaviours.
    lengths:  (B,) int64.
    """

    target: torch.Tensor
    sequence: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor


@dataclass(frozen=True)
class BehaviorView:
    """What :class:`BehaviorInputs` gives a model.

    other: (B, F_other, E) every field but the paired sequences, DNN-style (categorical incl. the
           targets, numeric as value x vector, unpaired sequences mean pooled).
    pairs: one :class:`PairView` per behaviour pair; ``target`` / ``sequence`` / ``mask`` /
           ``lengths`` are the first pair's.
    """

    other: torch.Tensor
    pairs: tuple[PairView, ...]

    @property
    def target(self) -> torch.Tensor:
        return self.pairs[0].target

    @property
    def sequence(self) -> torch.Tensor:
        return self.pairs[0].sequence

    @property
    def mask(self) -> torch.Tensor:
        return self.pairs[0].mask

    @property
    def lengths(self) -> torch.Tensor:
        return self.pairs[0].lengths


class BehaviorInputs(nn.Module):
    """Embeds a batch for a sequence model through one fused table (:class:`FeatureEmbedding`).

    A shared-vocabulary sequence uses its owner's rows, so the target item and the history items
    live in the same embedding space. The paired sequences are *not* mean pooled (the model pools
    them); ``num_other`` fields remain for the MLP. Needs one embedding size for all fields.
    """

    def __init__(self, schema: FeatureSchema, dim: int, sequence_field: FieldSpec = None, target_field: FieldSpec = None):
        super().__init__()
        self.pairs = resolve_pairs(schema, sequence_field, target_field)
        self.embedding = FeatureEmbedding(schema, dim)
        if not self.embedding.fused.uniform:
            raise ConfigError("sequence models need one embedding size (drop per-field embedding_dim)")
        cats = [f.name for f in schema.categorical]
        self.target_columns = [[cats.index(t) for t in targets] for _, targets in self.pairs]
        paired = {s for seqs, _ in self.pairs for s in seqs}
        self.other_sequences = [f.name for f in schema.sequences if f.name not in paired]
        self.max_lens = [max(schema.feature(s).max_len for s in seqs) for seqs, _ in self.pairs]
        self.embedding_dim = dim
        self.pair_dims = [dim * len(seqs) for seqs, _ in self.pairs]
        self.num_other = self.embedding.num_categorical + self.embedding.num_numeric + len(self.other_sequences)

    @property
    def pair_dim(self) -> int:
        return self.pair_dims[0]

    @property
    def max_len(self) -> int:
        return self.max_lens[0]

    def forward(self, batch: Batch) -> BehaviorView:
        emb = self.embedding
        parts = []
        cat = None
        if emb.num_categorical:
            cat = emb.fused(batch.ids)  # (B, F, E)
            parts.append(cat)
        if emb.num_numeric:
            parts.append(batch.dense.unsqueeze(-1) * emb.numeric_weight)
        for name in self.other_sequences:
            s = batch.sequences[name]
            parts.append(masked_mean(emb.fused(s.values), s.mask()).unsqueeze(1))
        other = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        views = []
        for (seqs, _), cols, D in zip(self.pairs, self.target_columns, self.pair_dims):
            target = torch.cat([cat[:, j] for j in cols], -1)  # (B, D)
            first = batch.sequences[seqs[0]]
            B, L = first.values.shape
            if L == 0:  # every history in the batch is empty: one all-padding slot keeps shapes valid
                seq = target.new_zeros(B, 1, D)
                mask = torch.zeros(B, 1, dtype=torch.bool, device=target.device)
            else:
                # parallel sequences share the first one's lengths; align their padded widths to it
                seq = torch.cat([_width(emb.fused(batch.sequences[s].values), L) for s in seqs], -1)
                mask = first.mask()
            views.append(PairView(target=target, sequence=seq, mask=mask, lengths=first.lengths))
        return BehaviorView(other=other, pairs=tuple(views))


def _width(x: torch.Tensor, L: int) -> torch.Tensor:
    """(B, L', E) -> (B, L, E): trim or zero-pad the padded tail."""
    if x.shape[1] >= L:
        return x[:, :L]
    return torch.cat([x, x.new_zeros(x.shape[0], L - x.shape[1], x.shape[2])], 1)


# --------------------------------------------------------------------------- DIN attention
class TargetAttention(nn.Module):
    """DIN's local activation unit and weighted sum pooling (Zhou et al., KDD 2018, Fig. 2, eq. 3).

    target q: (B, D), sequence k: (B, L, D), mask (B, L) -> (B, D)::

        w_i = MLP([q, k_i, q - k_i, q * k_i])    (scalar, no softmax, no sigmoid)
        out = sum_{i real} w_i k_i

    The paper feeds the outer product of q and k_i with q and k_i; the official code and
    FuxiCTR's ``DIN_Attention`` (``use_softmax=False`` by default) use ``[q, k, q-k, q*k]``, as here.
    Weights are deliberately *not* normalised, so the pooled vector keeps the intensity of the
    user's interest (how many behaviours match). The unit runs only on real positions (gathered
    by the mask), so padded slots cost nothing, cannot change the output and never enter Dice's
    batch statistics; an empty history pools to zeros.
    """

    def __init__(self, dim: int, hidden_units: Sequence[int] = (80, 40), activation_name: str = "dice",
                 dropout: float = 0.0):
        super().__init__()
        self.unit = MLP(4 * dim, hidden_units, activation_name=activation_name, dropout=dropout, output_dim=1)

    def scores(self, target: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor):
        """-> (row index (N,), position index (N,), scores (N,)) over the N real positions."""
        b_idx, l_idx = mask.nonzero(as_tuple=True)
        k = seq[b_idx, l_idx]  # (N, D)
        q = target[b_idx]  # (N, D)
        s = self.unit(torch.cat([q, k, q - k, q * k], -1)).squeeze(-1)  # (N,)
        return b_idx, l_idx, s

    def weights(self, target: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L) attention weights; exactly 0 on padded slots."""
        b_idx, l_idx, s = self.scores(target, seq, mask)
        return seq.new_zeros(mask.shape).index_put((b_idx, l_idx), s)

    def forward(self, target: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b_idx, l_idx, s = self.scores(target, seq, mask)
        contrib = s.unsqueeze(-1) * seq[b_idx, l_idx]  # (N, D)
        return seq.new_zeros(target.shape).index_add(0, b_idx, contrib)


# --------------------------------------------------------------------------- softmax target attention
def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over ``mask``-ed entries; rows with no True entry give all zeros (not NaN)."""
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim) * mask.to(scores.dtype)


class MultiHeadTargetAttention(nn.Module):
    """Scaled dot-product attention of one query (the target) over behaviours, ``num_heads`` heads.

    target (B, D), seq (B, L, D), mask (B, L) -> (B, D)::

        q = target W_q, K = seq W_k, V = seq W_v                          (heads of size d)
        a_h = softmax_{i real}(<q_h, K_h,i> / sqrt(d))                   (B, H, L)
        out = concat_h(sum_i a_h,i V_h,i) W_o

    As FuxiCTR's ``MultiHeadTargetAttention`` (``use_qkvo=True``, ``use_scale=True``), the
    attention ETA and SDIM's short-term part use. Departure: W_o has no bias, so an empty history
    gives exactly zeros.
    """

    def __init__(self, dim: int, attention_dim: int | None = None, num_heads: int = 1, dropout: float = 0.0):
        super().__init__()
        attention_dim = attention_dim or dim
        if attention_dim % num_heads:
            raise ConfigError(f"attention_dim={attention_dim} is not divisible by num_heads={num_heads}")
        self.h, self.d = num_heads, attention_dim // num_heads
        self.w_q = nn.Linear(dim, attention_dim, bias=False)
        self.w_k = nn.Linear(dim, attention_dim, bias=False)
        self.w_v = nn.Linear(dim, attention_dim, bias=False)
        self.w_o = nn.Linear(attention_dim, dim, bias=False)
        self.dropout = FastDropout(dropout) if dropout > 0 else None

    def weights(self, target: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, H, L) attention weights, summing to 1 over real slots (0 for an empty row)."""
        B, L, _ = seq.shape
        q = self.w_q(target).view(B, self.h, 1, self.d)
        k = self.w_k(seq).view(B, L, self.h, self.d).transpose(1, 2)  # (B, H, L, d)
        s = (q * k).sum(-1) * self.d**-0.5  # (B, H, L)
        return masked_softmax(s, mask.unsqueeze(1))

    def forward(self, target: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, _ = seq.shape
        a = self.weights(target, seq, mask)
        if self.dropout is not None:
            a = self.dropout(a)
        v = self.w_v(seq).view(B, L, self.h, self.d).transpose(1, 2)  # (B, H, L, d)
        out = (a.unsqueeze(-1) * v).sum(2).reshape(B, self.h * self.d)
        return self.w_o(out)


# --------------------------------------------------------------------------- AUGRU
class AUGRU(nn.Module):
    """GRU with attentional update gate (Zhou et al., DIEN, AAAI 2019, eqs. 12-13).

    x: (B, L, I), att: (B, L) attention scores, mask: (B, L) -> (B, H) final state::

        u_t = sigmoid(W_u x_t + U_u h_{t-1} + b_u),  r_t = sigmoid(W_r x_t + U_r h_{t-1} + b_r)
        h~_t = tanh(W_h x_t + r_t * (U_h h_{t-1} + b_hh))
        u'_t = a_t * u_t;   h_t = (1 - u'_t) * h_{t-1} + u'_t * h~_t

    (candidate gate in PyTorch's ``nn.GRU`` form.) A padded step leaves ``h`` unchanged, so the
    result is the state after each row's last real step; an empty row gives h_0 = 0. A Python loop
    over L steps (the inputs' projections are batched over all steps).
    """

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.w_x = nn.Linear(input_dim, 3 * hidden_dim)
        self.w_h = nn.Linear(hidden_dim, 3 * hidden_dim)

    def forward(self, x: torch.Tensor, att: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        gx = self.w_x(x)  # (B, L, 3H)
        h = x.new_zeros(B, self.hidden_dim)
        for t in range(L):
            xu, xr, xh = gx[:, t].chunk(3, -1)
            hu, hr, hh = self.w_h(h).chunk(3, -1)
            u = torch.sigmoid(xu + hu) * att[:, t : t + 1]
            r = torch.sigmoid(xr + hr)
            cand = torch.tanh(xh + r * hh)
            h_new = (1 - u) * h + u * cand
            h = torch.where(mask[:, t : t + 1], h_new, h)
        return h


# --------------------------------------------------------------------------- SimHash
class SimHash(nn.Module):
    """SimHash (Charikar, STOC 2002) with ``num_hashes`` hash functions of ``bits`` bits each.

    A fixed Gaussian projection R (D, m, tau) (a persistent buffer, never trained, as FuxiCTR's
    ``random_rotations`` with ``requires_grad=False``). For x (..., D):

    * :meth:`bits`: (..., m, tau) bool, ``x R > 0`` (FuxiCTR: ``relu(sign(x R))``);
    * :meth:`codes`: (..., m) int64, each hash's bits read as a binary number (bucket id).

    Cost per vector O(D m tau); hashing has no gradient (sign), so models use it for selection
    only and let gradients flow through the selected embeddings.
    """

    def __init__(self, input_dim: int, num_hashes: int, bits: int):
        super().__init__()
        if bits > 62:
            raise ConfigError(f"hash width {bits} > 62 bits does not fit an int64 code")
        self.num_hashes, self.num_bits = num_hashes, bits
        self.register_buffer("projection", torch.randn(input_dim, num_hashes, bits))
        self.register_buffer("powers", 2 ** torch.arange(bits, dtype=torch.long), persistent=False)

    @torch.no_grad()
    def bits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...d,dmt->...mt", x, self.projection) > 0

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        return (self.bits(x).long() * self.powers).sum(-1)


def collision_mean(target_codes: torch.Tensor, seq_codes: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor,
                   aggregation: str = "mean") -> torch.Tensor:
    """SDIM's hash-sampled pooling: per hash function, pool the real behaviours whose bucket equals
    the target's, then average over hash functions.

    target_codes (B, m), seq_codes (B, L, m), seq (B, L, D), mask (B, L) -> (B, D). O(B L m D); no
    target-behaviour scores. ``aggregation``: ``mean`` (average of the colliding behaviours;
    0 when none collides), ``sum`` (FuxiCTR's ``embedding_bag(mode="sum")``) or ``l2`` (the
    sum scaled to unit L2 norm).
    """
    hit = (seq_codes == target_codes.unsqueeze(1)) & mask.unsqueeze(-1)  # (B, L, m)
    w = hit.to(seq.dtype)
    pooled = torch.einsum("blm,bld->bmd", w, seq)  # (B, m, D) per-hash sums
    if aggregation == "mean":
        pooled = pooled / w.sum(1).clamp_min(1.0).unsqueeze(-1)
    elif aggregation == "l2":
        pooled = pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    elif aggregation != "sum":
        raise ConfigError(f"unknown SDIM aggregation '{aggregation}' (mean, sum, l2)")
    return pooled.mean(1)


def hamming_topk(target_bits: torch.Tensor, seq_bits: torch.Tensor, mask: torch.Tensor, k: int):
    """ETA's retrieval: the k real behaviours nearest the target in Hamming distance.

    target_bits (B, m) bool, seq_bits (B, L, m) bool, mask (B, L) -> (index (B, k'), valid (B, k'))
    with k' = min(k, L), ordered by distance; ties go to the more recent (later) behaviour. A row
    with fewer than k real behaviours fills the rest with padded slots (valid False).
    """
    B, L, m = seq_bits.shape
    dist = (seq_bits != target_bits.unsqueeze(1)).sum(-1)  # (B, L) in [0, m]
    dist = dist.masked_fill(~mask, m + 1)
    pos = torch.arange(L, device=mask.device)
    key = dist * L + (L - 1 - pos)  # distance first, then recency
    kk = min(k, L)
    idx = torch.topk(key, kk, dim=1, largest=False, sorted=True).indices
    return idx, torch.gather(mask, 1, idx)
