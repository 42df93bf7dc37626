"""Property tests: ``count_flops`` equals the analytic count of generated MLP and attention stacks.

Conventions (docs/flops.md): a multiply-add is 2 FLOPs, a bias add or activation 1 per output
element, softmax 1 per score, views / transposes / copies 0. The stacks are drawn at random (depths,
widths, batch sizes, bias flags, activations, heads), their FLOPs written out by hand here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nnip_scaling.flops import count_flops

_SETTINGS = settings(max_examples=25, deadline=None)
ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "gelu": nn.GELU, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


@st.composite
def mlp_stacks(draw):
    widths = draw(st.lists(st.integers(1, 24), min_size=2, max_size=6))
    biases = draw(st.lists(st.booleans(), min_size=len(widths) - 1, max_size=len(widths) - 1))
    acts = draw(st.lists(st.sampled_from(sorted(ACTIVATIONS)), min_size=len(widths) - 2,
                         max_size=len(widths) - 2))
    batch = draw(st.integers(1, 16))
    return widths, biases, acts, batch


def _build(widths, biases, acts):
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out, bias=biases[i]))
        if i < len(acts):
            layers.append(ACTIVATIONS[acts[i]]())
    return nn.Sequential(*layers)


@_SETTINGS
@given(stack=mlp_stacks())
def test_mlp_forward_and_training_step_match_the_analytic_count(stack):
    widths, biases, acts, B = stack
    mlp = _build(widths, biases, acts)
    pairs = list(zip(widths[:-1], widths[1:]))
    matmul = sum(2 * B * i * o for i, o in pairs)
    bias = sum(B * o for (_, o), b in zip(pairs, biases) if b)
    act = sum(B * o for (_, o) in pairs[: len(acts)])
    x = torch.randn(B, widths[0], generator=torch.Generator().manual_seed(1)).requires_grad_(True)

    fwd = count_flops(mlp, x)
    assert fwd.matmul == matmul
    assert fwd.total == fwd.forward == matmul + bias + act
    assert dict(fwd.uncounted) == {}

    # Training step on sum(y): each Linear's backward is two matmuls of its forward's size (the input
    # requires grad), its bias gradient a sum over the batch (1 per element), each activation's
    # backward 1 per element; the loss (a sum) is 1 per output element, its backward (expand) free.
    step = count_flops(mlp, x, backward=True, loss_fn=lambda y: y.sum())
    assert step.matmul == 3 * matmul
    assert step.forward == fwd.total + B * widths[-1]
    assert step.backward == 2 * matmul + bias + act


@st.composite
def attention_stacks(draw):
    heads = draw(st.integers(1, 4))
    head_dim = draw(st.integers(1, 8))
    return dict(batch=draw(st.integers(1, 3)), tokens=draw(st.integers(1, 12)), heads=heads, head_dim=head_dim,
                layers=draw(st.integers(1, 3)), bias=draw(st.booleans()))


class _Attention(nn.Module):
    """Multi-head self-attention written out: qkv projection, q k^T / sqrt(d), softmax, @ v, output."""

    def __init__(self, d: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d, bias=bias)
        self.out = nn.Linear(d, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        a = F.softmax(scores, dim=-1) @ v
        return self.out(a.transpose(1, 2).reshape(b, t, d))


@_SETTINGS
@given(spec=attention_stacks())
def test_attention_stack_matches_the_analytic_count(spec):
    b, t, h, q, n_layers, bias = (spec[k] for k in ("batch", "tokens", "heads", "head_dim", "layers", "bias"))
    d = h * q
    torch.manual_seed(0)
    stack = nn.Sequential(*[_Attention(d, h, bias) for _ in range(n_layers)])
    x = torch.randn(b, t, d, generator=torch.Generator().manual_seed(2))
    r = count_flops(stack, x)
    tokens = b * t
    proj = 2 * tokens * d * 3 * d + 2 * tokens * d * d  # qkv and output projections
    scores = 2 * b * h * t * t * q  # q @ k^T
    mix = 2 * b * h * t * t * q  # softmax(scores) @ v
    per_layer_matmul = proj + scores + mix
    per_layer_other = 2 * b * h * t * t + (tokens * 3 * d + tokens * d if bias else 0)  # scale, softmax, biases
    assert r.matmul == n_layers * per_layer_matmul
    assert r.total == n_layers * (per_layer_matmul + per_layer_other)
    assert dict(r.uncounted) == {}
