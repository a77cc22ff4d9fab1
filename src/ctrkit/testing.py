"""Small fitted schemas and in-memory batches for tests and examples (no files, no loader).

``tiny_schema`` builds a fitted schema with the requested field kinds; ``random_batch`` draws a
batch for it; ``learnable_batches`` draws batches whose labels follow a planted rule, so a model
can be checked to fit them.
"""

from __future__ import annotations

import numpy as np
import torch

from ctrkit.batch import Batch, FieldLayout, SequenceBatch
from ctrkit.schema import NUM_RESERVED, FeatureSchema


def tiny_schema(
    *,
    num_categorical: int = 4,
    num_numeric: int = 2,
    vocab: int = 12,
    sequence: bool = False,
    tasks: tuple[str, ...] = ("click",),
    domains: int = 0,
    group: bool = False,
) -> FeatureSchema:
    """A fitted schema: ``c0..`` categorical (vocab real values each, plus the reserved ids),
    ``n0..`` numeric, optionally a ``hist`` sequence sharing ``c0``'s vocabulary, ``tasks``."""
    feats: list[dict] = [{"name": f"c{i}", "kind": "categorical"} for i in range(num_categorical)]
    feats += [{"name": f"n{i}", "kind": "numeric"} for i in range(num_numeric)]
    if sequence:
        if num_categorical == 0:
            raise ValueError("a sequence feature shares c0's vocabulary; need num_categorical >= 1")
        feats.append({"name": "hist", "kind": "sequence", "max_len": 8, "share_vocab_with": "c0"})
    data: dict = {"features": feats, "tasks": [{"name": t} for t in tasks]}
    if domains:
        data["domain"] = "domain"
    if group:
        data["group"] = "user"
    if domains:
        data["num_domains"] = domains
    schema = FeatureSchema.from_dict(data)
    return schema.with_vocab_sizes({f"c{i}": vocab + NUM_RESERVED for i in range(num_categorical)})


def frappe_like_schema() -> FeatureSchema:
    """A fitted schema shaped like Frappe_x1: 10 categorical fields, 5,389 embedding rows in all
    (reserved rows included), so parameter counts can be compared with the BARS logs."""
    feats = [{"name": f"c{i}", "kind": "categorical"} for i in range(10)]
    schema = FeatureSchema.from_dict({"features": feats, "tasks": [{"name": "click"}]})
    return schema.with_vocab_sizes({f"c{i}": 539 if i < 9 else 538 for i in range(10)})


def random_batch(schema: FeatureSchema, batch_size: int = 16, *, seed: int = 0) -> Batch:
    """A batch of uniformly random valid ids, N(0,1) numerics, random sequences (some empty) and
    random labels."""
    g = torch.Generator().manual_seed(seed)
    layout = FieldLayout.from_schema(schema)
    B = batch_size
    cols = []
    for name in layout.categorical:
        size = schema.vocab_size(name)
        cols.append(torch.randint(NUM_RESERVED, size, (B,), generator=g) + layout.offset(name))
    ids = torch.stack(cols, 1) if cols else torch.zeros(B, 0, dtype=torch.long)
    dense = torch.randn(B, len(schema.numeric), generator=g)
    seqs = {}
    for f in schema.sequences:
        L = f.max_len
        lengths = torch.randint(0, L + 1, (B,), generator=g)
        lengths[0] = 0  # always include an empty history
        vals = torch.randint(NUM_RESERVED, schema.vocab_size(f.name), (B, L), generator=g)
        mask = torch.arange(L)[None, :] < lengths[:, None]
        vals = torch.where(mask, vals, torch.zeros_like(vals)) + layout.offset(f.name)
        seqs[f.name] = SequenceBatch(vals, lengths)
    labels = {t: torch.randint(0, 2, (B,), generator=g).float() for t in schema.task_names}
    domain = torch.randint(0, schema.num_domains, (B,), generator=g) if schema.num_domains else None
    group = torch.randint(0, max(B // 4, 1), (B,), generator=g) if schema.group else None
    return Batch(ids=ids, dense=dense, sequences=seqs, labels=labels, group=group, domain=domain)


def learnable_batches(
    schema: FeatureSchema, *, n_batches: int = 4, batch_size: int = 64, seed: int = 0
) -> list[Batch]:
    """Batches whose labels are a deterministic function of the inputs (a planted random score
    per value of c0/c1, plus the first numeric), so a capable model can drive training loss
    towards zero on them."""
    rng = np.random.default_rng(seed)
    layout = FieldLayout.from_schema(schema)
    score_tables = {n: torch.tensor(rng.normal(size=layout.total_rows) * 2.0, dtype=torch.float32) for n in layout.categorical[:2]}
    out = []
    for i in range(n_batches):
        b = random_batch(schema, batch_size, seed=seed * 1000 + i)
        s = torch.zeros(batch_size)
        for j, n in enumerate(layout.categorical[:2]):
            s = s + score_tables[n][b.ids[:, j]]
        if b.dense.shape[1]:
            s = s + b.dense[:, 0]
        for f in schema.sequences:
            seq = b.sequences[f.name]
            if layout.categorical:
                t0 = score_tables.get(layout.categorical[0])
                if t0 is not None:
                    s = s + (t0[seq.values] * seq.mask()).sum(1) / seq.lengths.clamp_min(1)
        y = (s > s.median()).float()
        labels = {t: y for t in schema.task_names}
        out.append(Batch(ids=b.ids, dense=b.dense, sequences=b.sequences, labels=labels, group=b.group, domain=b.domain))
    return out
