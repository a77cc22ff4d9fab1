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
              embedding and must be masked). Built on first access when ``table`` is set.
    mask:     (B, L) bool, True on real behaviours.
    lengths:  (B,) int64.
    table, indices: when training (autograd on), the batch's distinct embedding rows (U, E) and,
              per parallel sequence of the pair, (B, L) rows of ``table``:
              ``sequence == cat_f table[indices[f]]``. A model that only needs weighted sums of
              behaviours (SDIM) can work on the U rows instead of the B x L gathered ones.
              None otherwise.
    """

    target: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    table: torch.Tensor | None = None
    indices: tuple[torch.Tensor, ...] | None = None
    _sequence: torch.Tensor | None = None

    @property
    def sequence(self) -> torch.Tensor:
        if self._sequence is None:
            assert self.table is not None and self.indices is not None
            t = self.table
            seq = torch.cat([t.index_select(0, i.reshape(-1)).view(*i.shape, t.shape[1]) for i in self.indices], -1)
            object.__setattr__(self, "_sequence", seq)  # cache (the dataclass is frozen)
        return self._sequence


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
        lookup = self._lookup(batch)
        parts = []
        cat = None
        if emb.num_categorical:
            cat = lookup(batch.ids)  # (B, F, E)
            parts.append(cat)
        if emb.num_numeric:
            parts.append(batch.dense.unsqueeze(-1) * emb.numeric_weight)
        for name in self.other_sequences:
            s = batch.sequences[name]
            parts.append(masked_mean(lookup(s.values), s.mask()).unsqueeze(1))
        other = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        views = []
        for (seqs, _), cols, D in zip(self.pairs, self.target_columns, self.pair_dims):
            target = torch.cat([cat[:, j] for j in cols], -1)  # (B, D)
            first = batch.sequences[seqs[0]]
            B, L = first.values.shape
            if L == 0:  # every history in the batch is empty: one all-padding slot keeps shapes valid
                seq = target.new_zeros(B, 1, D)
                mask = torch.zeros(B, 1, dtype=torch.bool, device=target.device)
                views.append(PairView(target=target, mask=mask, lengths=first.lengths, _sequence=seq))
                continue
            mask = first.mask()
            values = [batch.sequences[s].values for s in seqs]
            if lookup.table is not None and all(v.shape[1] == L for v in values):
                # built lazily from the distinct rows (see PairView)
                views.append(PairView(target=target, mask=mask, lengths=first.lengths, table=lookup.table,
                                      indices=tuple(lookup.index(v) for v in values)))
            else:
                # parallel sequences share the first one's lengths; align their padded widths to it
                seq = torch.cat([_width(lookup(v), L) for v in values], -1)
                views.append(PairView(target=target, mask=mask, lengths=first.lengths, _sequence=seq))
        return BehaviorView(other=other, pairs=tuple(views))

    def _lookup(self, batch: Batch):
        """The embedding lookup of this batch: ids (...) -> (..., E).

        With autograd on, every id of the batch (categorical ids and all used sequences) is
        deduplicated first (:func:`unique_rows`), the table is read once for the U distinct rows
        and each field gathers from that (U, E) block. The values are those of a direct lookup;
        what changes is the backward: the table receives one gradient with U distinct rows (the
        per-occurrence sums are an ``index_add`` into (U, E)) instead of one sparse gradient per
        field with a row per id occurrence, which autograd adds up by concatenation and the
        optimizer then sorts (B x L occurrences per sequence: the dominant cost of a training
        step at L = 1,000). Without autograd (evaluation, export) it is a plain lookup.
        """
        fused = self.embedding.fused
        if not torch.is_grad_enabled():
            return _Lookup(fused)
        srcs = [batch.ids] if self.embedding.num_categorical else []
        srcs += [batch.sequences[s].values for seqs, _ in self.pairs for s in seqs]
        srcs += [batch.sequences[s].values for s in self.other_sequences]
        flat = torch.cat([t.reshape(-1) for t in srcs])
        rows, inverse = unique_rows(flat, fused.tables[0].num_embeddings)
        local: dict[int, torch.Tensor] = {}
        start = 0
        for t in srcs:
            local.setdefault(id(t), inverse[start : start + t.numel()].view(t.shape))
            start += t.numel()
        return _Lookup(fused, fused(rows), local)  # fused(rows): the only read of the table


class _Lookup:
    """ids (...) -> (..., E) for one batch: straight from the table, or (``table`` set) from the
    batch's distinct rows, ``local`` mapping each id tensor of the batch (by identity) to its rows
    of ``table``."""

    def __init__(self, fused: nn.Module, table: torch.Tensor | None = None, local: dict[int, torch.Tensor] | None = None):
        self.fused, self.table, self.local = fused, table, local

    def index(self, ids: torch.Tensor) -> torch.Tensor:
        return self.local[id(ids)]

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return self.fused(ids)
        idx = self.local[id(ids)]
        return self.table.index_select(0, idx.reshape(-1)).view(*idx.shape, self.table.shape[1])


def unique_rows(ids: torch.Tensor, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (N,) int64 in [0, num_rows) -> (rows (U,) ascending distinct ids, inverse (N,)) with
    ``rows[inverse] == ids``.

    ``torch.unique`` sorts the N ids; when the table is not much larger than N an occupancy map
    of ``num_rows`` flags is O(N + num_rows) and several times faster.
    """
    if ids.numel() and num_rows <= 16 * ids.numel():
        present = torch.zeros(num_rows, dtype=torch.bool, device=ids.device)
        present.index_fill_(0, ids, True)
        rows = present.nonzero().squeeze(1)
        remap = torch.empty(num_rows, dtype=torch.long, device=ids.device)
        remap.index_copy_(0, rows, torch.arange(rows.numel(), device=ids.device))
        return rows, remap.index_select(0, ids)
    return torch.unique(ids, sorted=True, return_inverse=True)


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
        if torch.jit.is_tracing() and not self.training:
            return self._dense(target, seq, mask)
        b_idx, l_idx, s = self.scores(target, seq, mask)
        contrib = s.unsqueeze(-1) * seq[b_idx, l_idx]  # (N, D)
        return seq.new_zeros(target.shape).index_add(0, b_idx, contrib)

    def _dense(self, target: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The same pooling over all B x L slots, padded ones scored and then zeroed: the form
        traced for export. ONNX has no accumulating ``index_add`` (the exporter writes a scatter
        that keeps one of the duplicate rows), and at inference Dice uses its running statistics,
        so scoring the padded slots changes nothing but the cost."""
        B, L, D = seq.shape
        q = target.unsqueeze(1).expand(B, L, D)
        s = self.unit(torch.cat([q, seq, q - seq, q * seq], -1).reshape(B * L, 4 * D)).reshape(B, L)
        s = s * mask.to(s.dtype)
        return torch.bmm(s.unsqueeze(1), seq).squeeze(1)  # (B, 1, L) @ (B, L, D) -> (B, D)


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
    * :meth:`codes`: (..., m) int64, each hash's bits read as a binary number (bucket id);
    * :meth:`gathered_codes`: the codes of vectors given as rows of a table (see there).

    Cost per vector O(D m tau); hashing has no gradient (sign), so models use it for selection
    only and let gradients flow through the selected embeddings. Everything here runs without
    autograd: one (N, D) x (D, tau m) matmul, then the bits are packed with byte ops.
    """

    def __init__(self, input_dim: int, num_hashes: int, bits: int):
        super().__init__()
        if bits > 62:
            raise ConfigError(f"hash width {bits} > 62 bits does not fit an int64 code")
        self.num_hashes, self.num_bits = num_hashes, bits
        self.register_buffer("projection", torch.randn(input_dim, num_hashes, bits))
        self.register_buffer("powers", 2 ** torch.arange(bits, dtype=torch.long), persistent=False)

    def _matrix(self, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Rows lo:hi of R as a (hi - lo, tau m) matrix, bit-major (column t m + j is bit t of hash j)."""
        R = self.projection[lo:hi]
        return R.transpose(1, 2).reshape(R.shape[0], -1)

    @torch.no_grad()
    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) -> (N, tau, m) projections, N = prod(...)."""
        D = self.projection.shape[0]
        return (x.detach().reshape(-1, D) @ self._matrix()).view(-1, self.num_bits, self.num_hashes)

    @torch.no_grad()
    def _pack(self, proj: torch.Tensor) -> torch.Tensor:
        """(N, tau, m) projections -> (N, m) bucket ids (uint8 when tau <= 8, else int64)."""
        bits = proj > 0
        if self.num_bits > 8 or torch.jit.is_tracing():  # dtype views below do not trace / export
            return (bits.long() * self.powers.view(-1, 1)).sum(1)
        b = bits.view(torch.uint8)  # (N, tau, m) 0/1 bytes
        if self.num_hashes % 8 == 0:  # 8 hashes' bit t per int64 word: tau word ops per 8 hashes
            b = b.view(torch.int64)  # (N, tau, m / 8)
        code = b[:, 0].clone()
        for t in range(1, self.num_bits):
            code |= b[:, t] << t  # per byte: bit t of each hash, never carries across bytes
        return code.view(torch.uint8)

    @torch.no_grad()
    def bits(self, x: torch.Tensor) -> torch.Tensor:
        return (self._project(x) > 0).transpose(1, 2).reshape(*x.shape[:-1], self.num_hashes, self.num_bits)

    @torch.no_grad()
    def codes(self, x: torch.Tensor, packed: bool = False) -> torch.Tensor:
        """(..., m) bucket ids, int64 (``packed``: the smallest integer dtype that holds them)."""
        c = self._pack(self._project(x)).view(*x.shape[:-1], self.num_hashes)
        return c if packed else c.long()

    @torch.no_grad()
    def gathered_codes(self, table: torch.Tensor, indices: Sequence[torch.Tensor], packed: bool = False) -> torch.Tensor:
        """Codes of the vectors ``cat_f table[indices[f]]`` (F parallel fields of width E = D / F),
        without gathering them: the projection is linear, so each distinct row is projected once,
        (U, E) x (E, tau m) per field, and the per-field projections are gathered and added.
        indices: F tensors (...) of rows of ``table`` (U, E) -> (..., m)."""
        E = table.shape[1]
        proj = None
        for f, idx in enumerate(indices):
            rows = table.detach() @ self._matrix(f * E, (f + 1) * E)  # (U, tau m)
            g = rows.index_select(0, idx.reshape(-1))
            proj = g if proj is None else proj.add_(g)
        c = self._pack(proj.view(-1, self.num_bits, self.num_hashes)).view(*indices[0].shape, self.num_hashes)
        return c if packed else c.long()


@torch.no_grad()
def collision_weights(target_codes: torch.Tensor, seq_codes: torch.Tensor, mask: torch.Tensor,
                      aggregation: str = "mean", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """SDIM's pooling as one weight per behaviour (for ``mean`` / ``sum`` aggregation).

    target_codes (B, m), seq_codes (B, L, m), mask (B, L) -> a (B, L): the average over hashes of
    the per-hash pooled vectors is ``sum_i a_i e_i`` with a_i = (1/m) sum_j [c_ij == c_target,j]
    s_j, s_j = 1 / max(1, #real behaviours colliding in hash j) (``mean``) or 1 (``sum``); 0 on
    padding. No gradient (bucket membership is a selection).
    """
    B, L, m = seq_codes.shape
    hit = (seq_codes == target_codes.unsqueeze(1)).to(dtype)  # (B, L, m)
    real = mask.to(dtype).unsqueeze(1)  # (B, 1, L)
    if aggregation == "mean":
        s = 1.0 / (m * torch.bmm(real, hit).clamp_min(1.0))  # (B, 1, m) colliding real behaviours per hash
    elif aggregation == "sum":
        s = hit.new_full((B, 1, m), 1.0 / m)
    else:
        raise ConfigError(f"collision_weights has no aggregation '{aggregation}' (mean, sum)")
    return torch.bmm(hit, s.transpose(1, 2)).view(B, L) * real.view(B, L)


def collision_mean(target_codes: torch.Tensor, seq_codes: torch.Tensor, seq: torch.Tensor, mask: torch.Tensor,
                   aggregation: str = "mean") -> torch.Tensor:
    """SDIM's hash-sampled pooling: per hash function, pool the real behaviours whose bucket equals
    the target's, then average over hash functions.

    target_codes (B, m), seq_codes (B, L, m), seq (B, L, D), mask (B, L) -> (B, D). O(B L m); no
    target-behaviour scores. ``aggregation``: ``mean`` (average of the colliding behaviours;
    0 when none collides), ``sum`` (FuxiCTR's ``embedding_bag(mode="sum")``) or ``l2`` (the
    sum scaled to unit L2 norm).
    """
    if aggregation not in ("mean", "sum", "l2"):
        raise ConfigError(f"unknown SDIM aggregation '{aggregation}' (mean, sum, l2)")
    if aggregation == "l2":  # the norm of each hash's sum enters the gradient: keep the (B, m, D) sums
        with torch.no_grad():  # bucket membership is a selection: no gradient
            w = ((seq_codes == target_codes.unsqueeze(1)) & mask.unsqueeze(-1)).to(seq.dtype)  # (B, L, m)
        pooled = torch.bmm(w.transpose(1, 2), seq)  # (B, m, D) per-hash sums
        return (pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12)).mean(1)
    a = collision_weights(target_codes, seq_codes, mask, aggregation, seq.dtype)
    return torch.bmm(a.unsqueeze(1), seq).squeeze(1)


def weighted_row_sum(a: torch.Tensor, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """sum_l a[b, l] table[idx[b, l]]: a (B, L) (no gradient), table (U, E), idx (B, L) -> (B, E).

    When the table is small next to the sequences (U <= 16 L) as (B, U) x (U, E) with the (B, U)
    weight matrix built by one scatter of B L scalars: forward and backward are then small dense
    matmuls instead of a gather and a scatter of B L rows; otherwise gather and (B, 1, L) x (B, L, E).
    """
    B, L = idx.shape
    U = table.shape[0]
    if U <= 16 * L:
        with torch.no_grad():
            flat = (torch.arange(B, device=idx.device).unsqueeze(1) * U + idx).reshape(-1)
            W = a.new_zeros(B * U).index_add_(0, flat, a.reshape(-1)).view(B, U)
        # (E, U) x (U, B), transposed: several times faster on CPU than (B, U) x (U, E) for small E,
        # and so is its backward (E, B) x (B, U)
        return (table.t() @ W.t()).t()
    rows = table.index_select(0, idx.reshape(-1)).view(B, L, -1)
    return torch.bmm(a.unsqueeze(1), rows).squeeze(1)


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
