"""Counter gaps of issue 13: fused transformer kernels, one rule for every attention kernel, and
uncounted float ops as a warning (not a silent entry)."""

import warnings

import pytest
import torch
from torch import nn

from nnip_scaling.flops import UncountedOpsWarning, count_flops
from nnip_scaling.flops import _rules

aten = torch.ops.aten


def _encoder(norm_first: bool, activation: str) -> nn.TransformerEncoder:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=24, dropout=0.0, batch_first=True,
                                       norm_first=norm_first, activation=activation)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_fused_encoder_layer_counts_what_the_unfused_layer_counts(norm_first, activation):
    enc, x = _encoder(norm_first, activation), torch.randn(3, 5, 16)
    with torch.no_grad():  # eval + no_grad: torch's fast path, one fused kernel per layer
        fused = count_flops(enc, x)
    unfused = count_flops(enc, x)  # autograd on: the ordinary path (linear, SDPA, layer norm, ...)
    assert "aten._transformer_encoder_layer_fwd" in fused.by_op
    assert "aten._transformer_encoder_layer_fwd" not in unfused.by_op
    assert fused.total == unfused.total > 0 and fused.matmul == unfused.matmul
    assert dict(fused.uncounted) == {}


def test_fused_encoder_layer_hand_count():
    """One post-norm layer, T = B·S tokens, d = 16, f = 24, H = 4 heads: linears
    2T(3d² + d² + 2df) + biases T(3d + d + f + d), attention 4·B·S²·d + B·H·S² scores, two
    residual adds 2Td, ReLU Tf, two layer norms (their decomposition, counted separately)."""
    b, s, d, f, h = 3, 5, 16, 24, 4
    t = b * s
    enc = _encoder(False, "relu")
    enc.layers = enc.layers[:1]
    x = torch.randn(b, s, d)
    with torch.no_grad():
        r = count_flops(enc, x)
    ln = count_flops(nn.LayerNorm(d), torch.randn(t, d)).total
    linears = 2 * t * (3 * d * d + d * d + 2 * d * f) + t * (3 * d + d + f + d)
    attention = 4 * b * s * s * d + b * h * s * s
    assert r.total == linears + attention + 2 * t * d + t * f + 2 * ln
    assert r.matmul == 2 * t * (3 * d * d + d * d + 2 * d * f) + 4 * b * s * s * d


def test_fused_multi_head_attention_counts_what_the_unfused_one_counts():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(2, 5, 16)  # the fast path needs self-attention (query is key is value)
    with torch.no_grad():
        fused = count_flops(lambda a: mha(a, a, a, need_weights=False)[0], x)
    unfused = count_flops(lambda a: mha(a, a, a, need_weights=False)[0], x)
    assert "aten._native_multi_head_attention" in fused.by_op
    assert fused.total == unfused.total > 0 and dict(fused.uncounted) == {}


# every fused attention kernel, with q, k, v at 0..2 (forward) or 1..3 (backward)
_B, _H, _SQ, _SK, _DQ, _DV = 2, 3, 5, 7, 4, 6
FORWARD = ["_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_fused_attention_overrideable",
           "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
           "_scaled_dot_product_cudnn_attention", "_flash_attention_forward", "_efficient_attention_forward"]
BACKWARD = [n + "_backward" for n in FORWARD[:5]] + ["_flash_attention_backward", "_efficient_attention_backward"]


def _qkv(name):
    """Dense ``[B, H, S, D]`` inputs (torch's formulas read the low-level kernels' dense inputs
    in this layout too; their variable-length form is unbound per sequence by torch)."""
    def t(s, d):
        return torch.empty((_B, _H, s, d), device="meta")
    return t(_SQ, _DQ), t(_SK, _DQ), t(_SK, _DV)


def _call_rule(name, backward):
    func = getattr(aten, name).default
    kind, _, rule = _rules.classify(func)
    assert kind == _rules.MATMUL, name
    q, k, v = _qkv(name)
    if not backward:
        args = (q, k, v, None, None, _SQ, _SK, 0.0, False, False)
        out = (torch.empty_like(torch.empty(q.shape[:-1] + (_DV,), device="meta")),)
    else:
        grad_out = torch.empty(q.shape[:-1] + (_DV,), device="meta")
        args = (grad_out, q, k, v, grad_out, None, None, None, _SQ, _SK, 0.0, False, None, None)
        out = (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v))
    return rule(func, args, {}, out)


def test_every_attention_kernel_has_the_same_rule():
    """CPU flash, CUDA flash / efficient / cuDNN, overrideable and the low-level kernels count
    the same matmuls and the same softmax for the same shapes (rules called directly: no GPU here)."""
    scores = _B * _H * _SQ * _SK
    fwd = {n: _call_rule(n, False) for n in FORWARD}
    assert set(fwd.values()) == {(2 * scores * (_DQ + _DV), scores)}, fwd
    bwd = {n: _call_rule(n, True) for n in BACKWARD}
    assert set(bwd.values()) == {(2 * scores * (3 * _DQ + 2 * _DV), scores)}, bwd


def test_integer_only_unknown_ops_are_free_and_silent():
    @torch.library.custom_op("nnip_flops_test::int_mystery", mutates_args=())
    def int_mystery(x: torch.Tensor) -> torch.Tensor:
        return x + 1

    with warnings.catch_warnings():
        warnings.simplefilter("error", UncountedOpsWarning)
        r = count_flops(int_mystery, torch.arange(5))
    assert dict(r.uncounted) == {} and r.total == 0


def test_transformer_under_no_grad_is_not_zero_and_does_not_warn():
    """The reproducer of issue 13: total was 0, with no warning."""
    enc = _encoder(False, "relu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncountedOpsWarning)
        with torch.no_grad():
            assert count_flops(enc, torch.randn(2, 4, 16)).total > 0


def test_estimate_kappa_warns_once_about_uncounted_ops():
    @torch.library.custom_op("nnip_flops_test::kappa_mystery", mutates_args=())
    def kappa_mystery(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    class Mysterious(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4)

        def forward(self, g):
            return kappa_mystery(self.lin(g.positions)).sum()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from nnip_scaling.flops import estimate_kappa

        est = estimate_kappa(Mysterious(), batch_sizes=(2, 5))
    hits = [w for w in caught if issubclass(w.category, UncountedOpsWarning)]
    assert len(hits) == 1 and "nnip_flops_test.kappa_mystery (x2 calls" in str(hits[0].message)
    assert dict(est.uncounted) == {"nnip_flops_test.kappa_mystery": 2}
