"""ctrkit.nn.field_attention: pair_scores and mix against a float64 reference, forward and
backward, through both compiled versions of the C kernels, strided and transposed operands,
thread splits, the PyTorch fallback, and the attention layers built on them."""

from __future__ import annotations

import pytest
import torch

from ctrkit.nn import field_attention as fa
from ctrkit.nn.attention import MultiHeadSelfAttention
from ctrkit.nn.destine import DisentangledSelfAttention
from ctrkit.nn.interhat import TransformerSelfAttention

if fa._native is None:
    pytest.skip("the attention kernels are not built: no C compiler at install time", allow_module_level=True)
from ctrkit.nn import _fieldattn  # noqa: E402

def available_isas() -> list[str]:
    out = []
    for name in ("baseline", "avx2+fma"):
        try:
            prev = _fieldattn.isa()
            _fieldattn.use_isa(name)
            _fieldattn.use_isa(prev)
            out.append(name)
        except ValueError:
            pass
    return out


@pytest.fixture(params=available_isas())
def isa(request):
    prev = _fieldattn.isa()
    _fieldattn.use_isa(request.param)
    yield request.param
    _fieldattn.use_isa(prev)


def ref_scores(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.einsum("bihd,bjhd->bhij", x.double(), y.double()) * scale


def ref_mix(a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bhij,bjhd->bihd", a.double(), y.double())


# Shapes (B, Fx, Fy, H, d): Frappe's 10 fields and 4 heads of 32; head sizes that are not a
# multiple of 8 or 32 (the kernels' tails); more than 32 key fields (two column blocks); one field.
SHAPES = [(6, 10, 10, 4, 32), (5, 3, 7, 1, 8), (4, 13, 9, 2, 37), (3, 10, 41, 1, 128), (2, 1, 1, 3, 5)]


@pytest.mark.parametrize("B,Fx,Fy,H,d", SHAPES)
def test_pair_scores_and_mix_match_the_reference_forward_and_backward(isa, B, Fx, Fy, H, d):
    torch.manual_seed(0)
    x = torch.randn(B, Fx, H, d, requires_grad=True)
    y = torch.randn(B, Fy, H, d, requires_grad=True)
    s = fa.pair_scores(x, y, 0.3)
    assert s.shape == (B, H, Fx, Fy)
    torch.testing.assert_close(s.double(), ref_scores(x, y, 0.3), rtol=1e-5, atol=1e-5)
    a = torch.softmax(s, dim=-1)
    v = torch.randn(B, Fy, H, d, requires_grad=True)
    z = fa.mix(a, v)
    assert z.shape == (B, Fx, H, d) and z.is_contiguous()
    torch.testing.assert_close(z.double(), ref_mix(a, v), rtol=1e-5, atol=1e-5)

    g = torch.randn(B, Fx, H, d)
    grads = torch.autograd.grad((z * g).sum(), (x, y, v))
    x64, y64, v64 = (t.detach().double().requires_grad_() for t in (x, y, v))
    z64 = ref_mix(torch.softmax(ref_scores(x64, y64, 0.3), dim=-1), v64)
    refs = torch.autograd.grad((z64 * g.double()).sum(), (x64, y64, v64))
    for got, want in zip(grads, refs):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)


def test_empty_batches_and_fields(isa):
    for B, Fx, Fy in ((0, 4, 4), (3, 2, 0), (3, 0, 2)):
        x, y = torch.randn(B, Fx, 2, 5), torch.randn(B, Fy, 2, 5)
        s = fa.pair_scores(x, y)
        assert s.shape == (B, 2, Fx, Fy)
        z = fa.mix(torch.randn(B, 2, Fx, Fy), y)
        assert z.shape == (B, Fx, 2, 5)
        if Fy == 0:
            assert (z == 0).all()  # an empty sum


def test_strided_views_and_transposed_weights(isa):
    # q, k, v as views of one projection (B, F, 3, H, d), weights as a transposed view: read in
    # place, same values as from contiguous copies.
    torch.manual_seed(1)
    B, F, H, d = 5, 10, 4, 32
    qkv = torch.randn(B, F, 3, H, d)
    q, k, v = qkv.unbind(2)
    assert not q.is_contiguous()
    torch.testing.assert_close(fa.pair_scores(q, k, 0.5), fa.pair_scores(q.contiguous(), k.contiguous(), 0.5), rtol=0, atol=0)
    w = torch.randn(B, H, F, F)
    wt = w.transpose(2, 3)
    torch.testing.assert_close(fa.mix(wt, v), fa.mix(wt.contiguous(), v.contiguous()), rtol=0, atol=0)
    # A last axis that is not contiguous is copied first.
    odd = torch.randn(B, F, H, d + 1)[..., :d]  # rows padded: strided, last axis contiguous
    lastdim = torch.randn(B, d, H, F).permute(0, 3, 2, 1)  # (B, F, H, d), stride(-1) != 1
    assert lastdim.stride(-1) != 1
    torch.testing.assert_close(fa.pair_scores(lastdim, odd, 1.0).double(), ref_scores(lastdim, odd, 1.0), rtol=1e-5, atol=1e-5)


def test_results_do_not_depend_on_the_thread_count():
    torch.manual_seed(2)
    B, F, H, d = 1500, 10, 4, 32  # enough rows for a split over threads
    x, y = torch.randn(B, F, H, d), torch.randn(B, F, H, d)
    a = torch.softmax(torch.randn(B, H, F, F), dim=-1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = (fa.pair_scores(x, y, 0.2), fa.mix(a, y))
        torch.set_num_threads(3)
        three = (fa.pair_scores(x, y, 0.2), fa.mix(a, y))
    finally:
        torch.set_num_threads(before)
    for p, q in zip(one, three):
        assert torch.equal(p, q)


def _mix_in_child(queue) -> None:
    a = torch.full((600, 1, 2, 2), 0.5)
    queue.put(float(fa.mix(a, torch.ones(600, 2, 1, 3)).sum()))


def test_a_forked_child_gets_its_own_threads():
    # The parent's pool has threads the child does not: the child must still finish.
    import multiprocessing as mp

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        fa.mix(torch.full((600, 1, 2, 2), 0.5), torch.ones(600, 2, 1, 3))  # the parent's pool exists
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_mix_in_child, args=(queue,))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        assert queue.get(timeout=5) == 600 * 2 * 3
    finally:
        torch.set_num_threads(before)


def test_fallback_without_the_kernels_and_for_other_dtypes(monkeypatch):
    torch.manual_seed(3)
    x, y = torch.randn(3, 6, 2, 5), torch.randn(3, 6, 2, 5)
    a = torch.softmax(torch.randn(3, 2, 6, 6), dim=-1)
    native = (fa.pair_scores(x, y, 0.7), fa.mix(a, y))
    monkeypatch.setenv("CTRKIT_NATIVE_ATTENTION", "0")
    assert not fa.native_available()
    fallback = (fa.pair_scores(x, y, 0.7), fa.mix(a, y))
    for p, q in zip(native, fallback):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    monkeypatch.delenv("CTRKIT_NATIVE_ATTENTION")
    # float64 takes PyTorch's products (the kernels are float32 only).
    s64 = fa.pair_scores(x.double(), y.double(), 0.7)
    assert s64.dtype == torch.float64
    torch.testing.assert_close(s64, ref_scores(x, y, 0.7))


def test_shape_errors_name_the_operands():
    with pytest.raises(ValueError, match="4 dimensions"):
        fa.pair_scores(torch.randn(3, 4, 5), torch.randn(3, 4, 5))
    with pytest.raises(ValueError, match="differ in batch, heads or head size"):
        fa.pair_scores(torch.randn(3, 4, 2, 5), torch.randn(3, 4, 2, 6))
    with pytest.raises(ValueError, match="do not fit values"):
        fa.mix(torch.randn(3, 2, 4, 4), torch.randn(3, 5, 2, 6))


@pytest.mark.parametrize(
    "make",
    [
        lambda: MultiHeadSelfAttention(6, 8, num_heads=2, use_scale=True, layer_norm=True),
        lambda: MultiHeadSelfAttention(8, 8, num_heads=4),
        lambda: TransformerSelfAttention(8, 4, num_heads=2),
        lambda: DisentangledSelfAttention(6, 8, num_heads=2, dropout=0.0, use_scale=True),
        lambda: DisentangledSelfAttention(6, 8, num_heads=1, dropout=0.0, use_residual=False, relu_before_att=True),
    ],
    ids=["autoint-proj", "autoint-identity", "interhat", "destine", "destine-no-residual"],
)
def test_attention_layers_agree_with_and_without_the_kernels(make, monkeypatch):
    # Same layer, same input: outputs and every parameter gradient agree between the kernels and
    # PyTorch's products.
    torch.manual_seed(4)
    layer = make()
    x = torch.randn(7, 5, layer.w_q.in_features if hasattr(layer, "w_q") else 8)

    def run():
        layer.zero_grad()
        out = layer(x)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}

    out_native, grads_native = run()
    monkeypatch.setenv("CTRKIT_NATIVE_ATTENTION", "0")
    out_torch, grads_torch = run()
    torch.testing.assert_close(out_native, out_torch, rtol=1e-5, atol=1e-5)
    assert grads_native.keys() == grads_torch.keys() and grads_native
    for name in grads_native:
        torch.testing.assert_close(grads_native[name], grads_torch[name], rtol=1e-4, atol=1e-5, msg=name)


def test_autoint_layer_matches_the_per_head_formula():
    # out = ReLU(concat_h softmax(q_h k_h^T * scale) v_h + x W_res), written out head by head.
    torch.manual_seed(5)
    layer = MultiHeadSelfAttention(6, 8, num_heads=2, use_scale=True)
    x = torch.randn(4, 5, 6)
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        q, k, v = (x @ m.weight[sl].T for m in (layer.w_q, layer.w_k, layer.w_v))
        heads.append(torch.softmax(q @ k.transpose(1, 2) * 0.5, dim=-1) @ v)
    want = torch.relu(torch.cat(heads, dim=-1) + x @ layer.w_res.weight.T)
    torch.testing.assert_close(layer(x), want, rtol=1e-5, atol=1e-6)
