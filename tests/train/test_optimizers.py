"""RowSparseAdam / RowSparseAdagrad against torch's optimizers and hand-computed updates."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from ctrkit.train import optimizers
from ctrkit.train.optimizers import RowSparseAdagrad, RowSparseAdam, coalesce_rows, native_available

N, D = 50, 4


def _table(seed: int = 0, sparse: bool = True) -> nn.Embedding:
    torch.manual_seed(seed)
    emb = nn.Embedding(N, D, sparse=sparse)
    nn.init.normal_(emb.weight, std=0.5)
    return emb


def _loss(emb: nn.Embedding, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # A loss whose gradient depends on the weights, so moments differ row to row and step to step.
    return ((emb(ids) - target) ** 2).sum() + emb(ids).pow(3).sum()


def _batches(steps: int, seed: int = 1, size: int = 30, high: int = N):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randint(0, high, (size, 3), generator=g), torch.randn(size, 3, D, generator=g)) for _ in range(steps)
    ]


def _train(emb, opt, batches):
    for ids, target in batches:
        opt.zero_grad(set_to_none=True)
        _loss(emb, ids, target).backward()
        opt.step()


# --- coalescing -------------------------------------------------------------------------------


def test_coalesce_rows_matches_torch_coalesce():
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 20, (200,), generator=g)
    vals = torch.randn(200, D, generator=g)
    sp = torch.sparse_coo_tensor(idx[None], vals, (20, D), check_invariants=True)
    rows, summed = coalesce_rows(sp)
    ref = sp.coalesce()
    assert torch.equal(rows, ref.indices()[0])
    torch.testing.assert_close(summed, ref.values(), rtol=0, atol=1e-5)
    # Already coalesced: returned as is; no duplicates: only reordered.
    rows2, vals2 = coalesce_rows(ref)
    assert torch.equal(rows2, ref.indices()[0]) and torch.equal(vals2, ref.values())
    perm = torch.randperm(20, generator=g)
    rows3, vals3 = coalesce_rows(torch.sparse_coo_tensor(perm[None], vals[:20], (20, D), check_invariants=True))
    assert torch.equal(rows3, torch.arange(20))
    assert torch.equal(vals3[perm], vals[:20])


def test_duplicate_ids_are_summed_before_the_update():
    # Adam is not linear in the gradient: updating with the duplicates applied one by one would
    # give a different result than one update with their sum.
    emb = _table()
    w0 = emb.weight.detach().clone()
    opt = RowSparseAdam(emb.parameters(), lr=0.1)
    ids = torch.tensor([[3, 3, 7], [3, 7, 9]])
    emb(ids).sum().backward()
    assert emb.weight.grad.is_sparse and not emb.weight.grad.is_coalesced()
    opt.step()
    # Expected: row 3 seen 3x -> g = 3 (all-ones per occurrence); first Adam step moves each
    # element by lr * sign(g) (m/sqrt(v) = g/|g| after bias correction), up to eps.
    expected = w0.clone()
    for r, count in {3: 3.0, 7: 2.0, 9: 1.0}.items():
        g = torch.full((D,), count)
        expected[r] -= 0.1 * g / (g.abs() + 1e-8)
        assert torch.allclose(opt.state[emb.weight]["exp_avg"][r], 0.1 * g)
        assert torch.allclose(opt.state[emb.weight]["exp_avg_sq"][r], 0.001 * g * g)
    torch.testing.assert_close(emb.weight.detach(), expected, rtol=0, atol=1e-6)

    # The same with the gradient of the duplicates summed by hand into a coalesced sparse grad.
    emb2 = _table()
    opt2 = RowSparseAdam(emb2.parameters(), lr=0.1)
    emb2.weight.grad = torch.sparse_coo_tensor(
        torch.tensor([[3, 7, 9]]), torch.tensor([3.0, 2.0, 1.0])[:, None].expand(3, D), (N, D), check_invariants=True
    ).coalesce()
    opt2.step()
    torch.testing.assert_close(emb2.weight.detach(), emb.weight.detach(), rtol=0, atol=0)


def test_adagrad_duplicate_ids_are_summed():
    emb = _table()
    w0 = emb.weight.detach().clone()
    opt = RowSparseAdagrad(emb.parameters(), lr=0.5)
    emb(torch.tensor([5, 5, 5, 8])).sum().backward()
    opt.step()
    # Row 5: g = 3 per dim, acc = mean(g^2) = 9, update = 0.5 * 3 / 3 = 0.5 (not 3 x 0.5 / 1).
    assert torch.allclose(emb.weight.detach()[5], w0[5] - 0.5, atol=1e-6)
    assert torch.allclose(emb.weight.detach()[8], w0[8] - 0.5, atol=1e-6)
    assert opt.state[emb.weight]["sum"][5].item() == pytest.approx(9.0)


# --- RowSparseAdam ------------------------------------------------------------------------------


def _all_rows_batches(steps: int, seed: int = 1):
    """Every batch contains every row (plus duplicates), so every row is updated every step."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        extra = torch.randint(0, N, (40,), generator=g)
        ids = torch.cat([torch.randperm(N, generator=g), extra]).view(-1, 3)
        out.append((ids, torch.randn(ids.shape[0], 3, D, generator=g)))
    return out


def test_adam_matches_torch_adam_when_every_row_is_present():
    batches = _all_rows_batches(8)
    sparse, dense = _table(sparse=True), _table(sparse=False)
    opt = RowSparseAdam(sparse.parameters(), lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    ref = torch.optim.Adam(dense.parameters(), lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    for ids, target in batches:
        for emb, o in ((sparse, opt), (dense, ref)):
            o.zero_grad(set_to_none=True)
            _loss(emb, ids, target).backward()
            o.step()
        torch.testing.assert_close(sparse.weight.detach(), dense.weight.detach(), rtol=0, atol=1e-6)
    state, ref_state = opt.state[sparse.weight], ref.state[dense.weight]
    # Per-row step equals the global step when all rows are present every step.
    assert state["step"].dtype == torch.int32
    assert torch.equal(state["step"], torch.full((N,), len(batches), dtype=torch.int32))
    assert int(ref_state["step"]) == len(batches)
    torch.testing.assert_close(state["exp_avg"], ref_state["exp_avg"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state["exp_avg_sq"], ref_state["exp_avg_sq"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_adam_dense_gradients_match_torch_adam(wd):
    batches = _batches(6)
    a, b = _table(sparse=False), _table(sparse=False)
    opt = RowSparseAdam(a.parameters(), lr=0.02, weight_decay=wd)
    ref = torch.optim.Adam(b.parameters(), lr=0.02, weight_decay=wd)
    for ids, target in batches:
        for emb, o in ((a, opt), (b, ref)):
            o.zero_grad(set_to_none=True)
            _loss(emb, ids, target).backward()
            o.step()
        torch.testing.assert_close(a.weight.detach(), b.weight.detach(), rtol=0, atol=1e-6)
    # Dense mode updates every row, present in the batch or not (as Adam does).
    assert torch.equal(opt.state[a.weight]["step"], torch.full((N,), len(batches), dtype=torch.int32))


def test_adam_dense_mode_on_non_embedding_parameters():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 1))
    net2 = copy.deepcopy(net)
    scalar = nn.Parameter(torch.tensor(0.3))
    scalar2 = nn.Parameter(torch.tensor(0.3))
    opt = RowSparseAdam([*net.parameters(), scalar], lr=0.01, weight_decay=0.01)
    ref = torch.optim.Adam([*net2.parameters(), scalar2], lr=0.01, weight_decay=0.01)
    x = torch.randn(16, 5)
    for _ in range(5):
        for m, s, o in ((net, scalar, opt), (net2, scalar2, ref)):
            o.zero_grad()
            (m(x).pow(2).mean() * s).backward()
            o.step()
    for p, q in zip([*net.parameters(), scalar], [*net2.parameters(), scalar2]):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-6)


def test_absent_rows_untouched_values_and_state():
    emb = _table()
    opt = RowSparseAdam(emb.parameters(), lr=0.05, weight_decay=0.1)
    _train(emb, opt, _batches(3, high=N))  # give every row some state first
    before_w = emb.weight.detach().clone()
    before = {k: v.clone() for k, v in opt.state[emb.weight].items()}
    ids = torch.tensor([[1, 4, 4], [9, 1, 30]])
    present = torch.zeros(N, dtype=torch.bool)
    present[ids.unique()] = True
    _train(emb, opt, [(ids, torch.randn(2, 3, D))])
    state = opt.state[emb.weight]
    assert torch.equal(emb.weight.detach()[~present], before_w[~present])
    for k in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(state[k][~present], before[k][~present]), k
        assert not torch.equal(state[k][present], before[k][present]), k
    assert torch.equal(state["step"][present], before["step"][present] + 1)
    assert not torch.equal(emb.weight.detach()[present], before_w[present])


def test_weight_decay_applies_only_to_present_rows():
    emb = _table()
    w0 = emb.weight.detach().clone()
    lr, wd = 0.1, 0.5
    opt = RowSparseAdam(emb.parameters(), lr=lr, weight_decay=wd)
    # Zero loss gradient on the present rows: only the weight decay term moves them.
    ids = torch.tensor([2, 11, 11])
    (emb(ids) * 0).sum().backward()
    opt.step()
    w = emb.weight.detach()
    absent = torch.ones(N, dtype=torch.bool)
    absent[[2, 11]] = False
    assert torch.equal(w[absent], w0[absent])
    for r in (2, 11):
        g = wd * w0[r]
        # First Adam step with bias correction: lr * g / (|g| + eps).
        torch.testing.assert_close(w[r], w0[r] - lr * g / (g.abs() + 1e-8), rtol=0, atol=1e-6)
    assert torch.equal(opt.state[emb.weight]["exp_avg"][absent], torch.zeros(int(absent.sum()), D))


def test_weight_decay_equals_l2_penalty_on_batch_rows():
    # weight_decay * w added to the gradient == the gradient of (wd/2) * ||w_rows||^2 over the
    # unique rows of the batch (FuxiCTR's embedding regularizer).
    wd = 0.3
    batches = _batches(4)
    a, b = _table(), _table()
    opt_a = RowSparseAdam(a.parameters(), lr=0.01, weight_decay=wd)
    opt_b = RowSparseAdam(b.parameters(), lr=0.01)
    for ids, target in batches:
        opt_a.zero_grad(set_to_none=True)
        _loss(a, ids, target).backward()
        opt_a.step()
        opt_b.zero_grad(set_to_none=True)
        rows = ids.unique()
        (_loss(b, ids, target) + wd / 2 * b(rows).pow(2).sum()).backward()
        opt_b.step()
    torch.testing.assert_close(a.weight.detach(), b.weight.detach(), rtol=0, atol=1e-6)


def test_per_row_bias_correction():
    # A row first seen at global step 5 gets a first update of magnitude lr (its own step 1),
    # not lr * (1 - beta1) / sqrt(1 - beta2) as a global-step correction would give.
    emb = _table()
    opt = RowSparseAdam(emb.parameters(), lr=0.01)
    for _ in range(4):
        opt.zero_grad(set_to_none=True)
        emb(torch.tensor([0])).sum().backward()
        opt.step()
    w0 = emb.weight.detach().clone()
    opt.zero_grad(set_to_none=True)
    emb(torch.tensor([0, 42])).sum().backward()
    opt.step()
    step = opt.state[emb.weight]["step"]
    assert step[0].item() == 5 and step[42].item() == 1 and step[1].item() == 0
    torch.testing.assert_close(emb.weight.detach()[42], w0[42] - 0.01, rtol=0, atol=1e-7)


def test_adam_sparse_then_dense_keeps_per_row_steps():
    # Mixing modes: dense steps after sparse ones use each row's own count.
    emb = _table()
    opt = RowSparseAdam(emb.parameters(), lr=0.01)
    _train(emb, opt, [(torch.tensor([[0, 1, 2]]), torch.zeros(1, 3, D))])
    emb.sparse = False
    w0 = emb.weight.detach().clone()
    _train(emb, opt, [(torch.tensor([[0, 5, 6]]), torch.zeros(1, 3, D))])
    step = opt.state[emb.weight]["step"]
    assert step[0].item() == 2 and step[1].item() == 2 and step[5].item() == 1 and step[40].item() == 1
    # Rows with zero gradient everywhere in dense mode: m = v = 0 -> no move.
    assert torch.equal(emb.weight.detach()[40], w0[40])
    # Row 5's first update (own step 1) has magnitude lr.
    assert torch.allclose((emb.weight.detach()[5] - w0[5]).abs(), torch.full((D,), 0.01), atol=1e-6)


def test_state_dict_round_trip_continues_identically():
    batches = _batches(6)
    a = _table()
    opt_a = RowSparseAdam(a.parameters(), lr=0.02, weight_decay=0.01)
    _train(a, opt_a, batches[:3])
    sd = copy.deepcopy(opt_a.state_dict())
    b = _table()
    b.load_state_dict(a.state_dict())
    opt_b = RowSparseAdam(b.parameters(), lr=0.5)  # different lr: must come from the state dict
    opt_b.load_state_dict(sd)
    assert opt_b.param_groups[0]["lr"] == 0.02
    assert opt_b.state[b.weight]["step"].dtype == torch.int32  # not cast to the weights' dtype
    _train(a, opt_a, batches[3:])
    _train(b, opt_b, batches[3:])
    assert torch.equal(a.weight.detach(), b.weight.detach())
    for k in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(opt_a.state[a.weight][k], opt_b.state[b.weight][k])


def test_state_dict_round_trip_adagrad():
    batches = _batches(6)
    a = _table()
    opt_a = RowSparseAdagrad(a.parameters(), lr=0.1, initial_accumulator=0.1)
    _train(a, opt_a, batches[:3])
    b = _table()
    b.load_state_dict(a.state_dict())
    opt_b = RowSparseAdagrad(b.parameters())
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    _train(a, opt_a, batches[3:])
    _train(b, opt_b, batches[3:])
    assert torch.equal(a.weight.detach(), b.weight.detach())


def test_lr_scheduler_changes_learning_rate():
    emb = _table()
    opt = RowSparseAdam(emb.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=0)
    sched.step(1.0)
    sched.step(2.0)  # no improvement -> lr * 0.1
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    w0 = emb.weight.detach().clone()
    emb(torch.tensor([3])).sum().backward()
    opt.step()
    torch.testing.assert_close(emb.weight.detach()[3], w0[3] - 0.01, rtol=0, atol=1e-7)


# --- RowSparseAdagrad -----------------------------------------------------------------------------


def test_rowwise_adagrad_matches_hand_computed_update():
    emb = _table()
    w0 = emb.weight.detach().clone()
    lr, eps, init, wd = 0.1, 1e-10, 0.2, 0.01
    opt = RowSparseAdagrad(emb.parameters(), lr=lr, eps=eps, initial_accumulator=init, weight_decay=wd)
    c = torch.tensor([1.0, -2.0, 3.0, 0.5])
    ids = torch.tensor([4, 6, 4])
    (emb(ids) * c).sum().backward()
    opt.step()
    acc = opt.state[emb.weight]["sum"]
    assert acc.shape == (N,)
    w1 = w0.clone()
    for r, count in ((4, 2.0), (6, 1.0)):
        g = count * c + wd * w0[r]
        a = init + (g * g).mean()
        assert acc[r].item() == pytest.approx(a.item(), rel=1e-6)
        w1[r] = w0[r] - lr * g / (math.sqrt(a.item()) + eps)
    others = torch.ones(N, dtype=torch.bool)
    others[[4, 6]] = False
    assert torch.all(acc[others] == init)
    torch.testing.assert_close(emb.weight.detach(), w1, rtol=0, atol=1e-6)

    # Second step on row 4 only: accumulator keeps growing, row 6 untouched.
    w1 = emb.weight.detach().clone()
    opt.zero_grad(set_to_none=True)
    (emb(torch.tensor([4])) * c).sum().backward()
    opt.step()
    g = c + wd * w1[4]
    a2 = init + ((2 * c + wd * w0[4]) ** 2).mean() + (g * g).mean()
    assert acc[4].item() == pytest.approx(a2.item(), rel=1e-6)
    torch.testing.assert_close(emb.weight.detach()[4], w1[4] - lr * g / math.sqrt(a2.item()), rtol=0, atol=1e-6)
    assert torch.equal(emb.weight.detach()[6], w1[6])


def test_rowwise_adagrad_dense_gradients_same_formula():
    a, b = _table(sparse=True), _table(sparse=False)
    opt_a = RowSparseAdagrad(a.parameters(), lr=0.05, weight_decay=0.0)
    opt_b = RowSparseAdagrad(b.parameters(), lr=0.05, weight_decay=0.0)
    for ids, target in _all_rows_batches(4):
        _train(a, opt_a, [(ids, target)])
        _train(b, opt_b, [(ids, target)])
    torch.testing.assert_close(a.weight.detach(), b.weight.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(opt_a.state[a.weight]["sum"], opt_b.state[b.weight]["sum"], rtol=1e-6, atol=1e-7)


def test_elementwise_adagrad_matches_torch_adagrad():
    a, b = _table(sparse=True), _table(sparse=False)
    opt = RowSparseAdagrad(a.parameters(), lr=0.05, initial_accumulator=0.1, rowwise=False)
    ref = torch.optim.Adagrad(b.parameters(), lr=0.05, initial_accumulator_value=0.1)
    for ids, target in _all_rows_batches(5):
        _train(a, opt, [(ids, target)])
        _train(b, ref, [(ids, target)])
        torch.testing.assert_close(a.weight.detach(), b.weight.detach(), rtol=0, atol=1e-6)


def test_adagrad_absent_rows_untouched():
    emb = _table()
    opt = RowSparseAdagrad(emb.parameters(), lr=0.1, weight_decay=0.1)
    _train(emb, opt, _batches(2))
    w, acc = emb.weight.detach().clone(), opt.state[emb.weight]["sum"].clone()
    _train(emb, opt, [(torch.tensor([[7, 8, 7]]), torch.randn(1, 3, D))])
    keep = torch.ones(N, dtype=torch.bool)
    keep[[7, 8]] = False
    assert torch.equal(emb.weight.detach()[keep], w[keep])
    assert torch.equal(opt.state[emb.weight]["sum"][keep], acc[keep])
    assert not torch.equal(emb.weight.detach()[7], w[7])


def test_rejects_bad_hyperparameters():
    p = [nn.Parameter(torch.zeros(3))]
    with pytest.raises(ValueError):
        RowSparseAdam(p, lr=-1.0)
    with pytest.raises(ValueError):
        RowSparseAdam(p, betas=(1.0, 0.999))
    with pytest.raises(ValueError):
        RowSparseAdagrad(p, weight_decay=-0.1)


# --- the C path (ctrkit.train._rowsparse) against the PyTorch path --------------------------------

needs_native = pytest.mark.skipif(optimizers._native is None, reason="the _rowsparse extension is not built")


def _adam_run(monkeypatch, native: bool, wd: float, steps: int = 12):
    """RowSparseAdam over a table of 3,000 rows, batches with many duplicate ids, every step."""
    monkeypatch.setenv("CTRKIT_NATIVE_SPARSE", "1" if native else "0")
    assert native_available() == native
    torch.manual_seed(3)
    emb = nn.Embedding(3000, 16, sparse=True)
    opt = RowSparseAdam(emb.parameters(), lr=0.01, betas=(0.8, 0.99), eps=1e-7, weight_decay=wd)
    g = torch.Generator().manual_seed(4)
    for _ in range(steps):
        # Skewed ids: a few rows in most batches, most rows in few, so step counts differ per row.
        ids = (torch.rand(600, 5, generator=g) ** 3 * 3000).long()
        opt.zero_grad(set_to_none=True)
        _loss(emb, ids, torch.randn(600, 5, 16, generator=g)).backward()
        opt.step()
    return emb.weight.detach().clone(), {k: v.clone() for k, v in opt.state[emb.weight].items()}


@needs_native
@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_native_adam_matches_the_pytorch_path(monkeypatch, wd):
    w_c, st_c = _adam_run(monkeypatch, True, wd)
    w_t, st_t = _adam_run(monkeypatch, False, wd)
    assert torch.equal(st_c["step"], st_t["step"])
    assert len(set(st_c["step"].tolist())) > 3  # rows were updated different numbers of times
    # Same formula, float32 throughout: only rounding may differ (PyTorch fuses some multiply-adds).
    torch.testing.assert_close(w_c, w_t, rtol=0, atol=1e-5)
    torch.testing.assert_close(st_c["exp_avg"], st_t["exp_avg"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(st_c["exp_avg_sq"], st_t["exp_avg_sq"], rtol=1e-4, atol=1e-7)


@needs_native
def test_native_coalesce_equals_the_sort_path(monkeypatch):
    g = torch.Generator().manual_seed(5)
    for rows, n, d in ((700_000, 50_000, 16), (10, 1000, 1), (5000, 3, 7)):
        idx = torch.randint(0, rows, (n,), generator=g)
        vals = torch.randn(n, d, generator=g)
        sp = torch.sparse_coo_tensor(idx[None], vals, (rows, d), check_invariants=True)
        monkeypatch.setenv("CTRKIT_NATIVE_SPARSE", "1")
        r_c, v_c = coalesce_rows(sp)
        monkeypatch.setenv("CTRKIT_NATIVE_SPARSE", "0")
        r_t, v_t = coalesce_rows(sp)
        assert torch.equal(r_c, r_t)
        # Both add each row's values in the order they come: the sums are bit for bit the same.
        assert torch.equal(v_c, v_t)


@needs_native
def test_native_coalesce_refuses_an_out_of_range_id_and_stays_usable(monkeypatch):
    monkeypatch.setenv("CTRKIT_NATIVE_SPARSE", "1")
    idx = torch.tensor([3, 1, 3, 60, 2])
    vals = torch.arange(10, dtype=torch.float32).view(5, 2)
    bad = torch.sparse_coo_tensor(idx[None], vals, (50, 2), check_invariants=False)
    with pytest.raises(IndexError, match="row id 60 at position 3 is outside the table's 50 rows"):
        coalesce_rows(bad)
    # The slots it had marked were released: the next gradient of a table this size is right.
    good = torch.sparse_coo_tensor(torch.tensor([[3, 1, 3]]), vals[:3], (50, 2), check_invariants=True)
    rows, summed = coalesce_rows(good)
    assert rows.tolist() == [1, 3]
    assert summed.tolist() == [[2.0, 3.0], [4.0, 6.0]]


@needs_native
def test_native_adam_refuses_rows_outside_the_table(monkeypatch):
    monkeypatch.setenv("CTRKIT_NATIVE_SPARSE", "1")
    emb = _table()
    opt = RowSparseAdam(emb.parameters(), lr=0.1)
    before = emb.weight.detach().clone()
    emb.weight.grad = torch.sparse_coo_tensor(
        torch.tensor([[1, N + 5]]), torch.ones(2, D), (N, D), is_coalesced=True, check_invariants=False
    )
    with pytest.raises(IndexError, match=f"span \\[1, {N + 5}\\], the table has {N} rows"):
        opt.step()
    assert torch.equal(emb.weight.detach(), before)


def test_native_switch_off(monkeypatch):
    monkeypatch.setenv("CTRKIT_NATIVE_SPARSE", "0")
    assert not native_available()
