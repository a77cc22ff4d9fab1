import pytest
import torch

from ctrkit.nn.dropout import FastDropout, dropout_mask


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_keep_rate_and_scale(p):
    torch.manual_seed(0)
    x = torch.ones(2000, 500)
    d = FastDropout(p).train()
    y = d(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - (1 - p)) < 0.005
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    # The expectation is preserved, as with nn.Dropout.
    assert abs(y.mean().item() - 1.0) < 0.01


def test_backward_uses_the_same_mask():
    torch.manual_seed(1)
    x = torch.randn(300, 70, requires_grad=True)
    y = FastDropout(0.3).train()(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() / 0.7)


def test_eval_is_identity_and_seeded_masks_repeat():
    x = torch.randn(10, 10)
    assert torch.equal(FastDropout(0.5).eval()(x), x)
    torch.manual_seed(3)
    a = dropout_mask(torch.Size([7, 13]), 0.4)
    torch.manual_seed(3)
    b = dropout_mask(torch.Size([7, 13]), 0.4)
    assert torch.equal(a, b) and a.shape == (7, 13)


def test_rejects_bad_probability():
    with pytest.raises(ValueError):
        FastDropout(1.0)
