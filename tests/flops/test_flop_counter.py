"""Known-answer tests for nnip_scaling.flops.count_flops.

Conventions under test (DESIGN.md): one multiply-add = 2 FLOPs; pointwise = 1 FLOP per output
element; reduction and scatter-add = 1 FLOP per input (source) element; gather, index_select,
copies, views = 0.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from nnip_scaling.flops import FlopReport, count_flops


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _seeded(module_fn, seed: int = 0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return module_fn()


# ----------------------------------------------------------------------------------------------
# nn.Linear and an MLP


@pytest.mark.parametrize("bias", [True, False])
def test_linear_exact(bias):
    B, n_in, n_out = 10, 4, 3
    lin = _seeded(lambda: nn.Linear(n_in, n_out, bias=bias))
    x = torch.randn(B, n_in, generator=_gen())
    r = count_flops(lin, x)
    mm = 2 * B * n_in * n_out
    assert r.matmul == mm
    assert r.total == mm + (B * n_out if bias else 0)
    assert r.forward == r.total and r.backward == 0
    assert dict(r.by_op) == {("aten.addmm" if bias else "aten.mm"): r.total}
    assert dict(r.by_module) == {"": r.total}
    assert dict(r.uncounted) == {}


def _mlp(n_in=6, h=8, n_out=2):
    return _seeded(lambda: nn.Sequential(nn.Linear(n_in, h), nn.SiLU(), nn.Linear(h, h), nn.Tanh(),
                                         nn.Linear(h, n_out)))


def test_mlp_forward_exact_including_bias_and_activations():
    B, n_in, h, n_out = 5, 6, 8, 2
    mlp = _mlp(n_in, h, n_out)
    r = count_flops(mlp, torch.randn(B, n_in, generator=_gen()))
    l0 = 2 * B * n_in * h + B * h
    l2 = 2 * B * h * h + B * h
    l4 = 2 * B * h * n_out + B * n_out
    act = B * h
    assert r.total == l0 + act + l2 + act + l4
    assert r.matmul == 2 * B * (n_in * h + h * h + h * n_out)
    assert dict(r.by_module) == {"": r.total, "0": l0, "1": act, "2": l2, "3": act, "4": l4}
    assert r.by_op["aten.silu"] == act and r.by_op["aten.tanh"] == act


def test_mlp_training_step_exact():
    """Backward of Linear: grad_input mm + grad_weight mm (same size as the forward mm) + bias
    grad (a sum over the batch: 1 per grad element); activation backward = 1 per element."""
    B, n_in, h, n_out = 5, 6, 8, 2
    mlp = _mlp(n_in, h, n_out)
    x = torch.randn(B, n_in, generator=_gen()).requires_grad_(True)
    fwd = count_flops(mlp, x)
    r = count_flops(mlp, x, backward=True, loss_fn=lambda y: y.sum())
    # backward matmuls are exactly twice the forward ones (the input requires grad)
    assert r.matmul == 3 * fwd.matmul
    loss_fwd = B * n_out  # the sum
    assert r.forward == fwd.total + loss_fwd
    bias_grads = B * h + B * h + B * n_out
    act_bwd = 2 * B * h
    assert r.backward == 2 * fwd.matmul + bias_grads + act_bwd
    assert r.by_module_backward["0"] == 2 * 2 * B * n_in * h + B * h
    assert r.by_module_backward["1"] == B * h
    assert r.by_module_backward[""] == r.backward  # the sum's backward (expand) is free
    assert r.total == r.forward + r.backward


def test_backward_does_not_touch_grad_attributes():
    mlp = _mlp()
    x = torch.randn(3, 6, generator=_gen())
    count_flops(mlp, x, backward=True, loss_fn=lambda y: y.square().mean())
    assert all(p.grad is None for p in mlp.parameters())


def test_first_layer_without_input_grad():
    """x does not require grad: the first layer computes no grad_input (what runs is counted)."""
    B, n_in, h, n_out = 5, 6, 8, 2
    mlp = _mlp(n_in, h, n_out)
    x = torch.randn(B, n_in, generator=_gen())
    fwd = count_flops(mlp, x)
    r = count_flops(mlp, x, backward=True, loss_fn=lambda y: y.sum())
    assert r.matmul == 3 * fwd.matmul - 2 * B * n_in * h


def test_matches_torch_flop_counter_on_matmuls():
    mlp = _mlp()
    x = torch.randn(7, 6, generator=_gen()).requires_grad_(True)
    with FlopCounterMode(display=False) as ref:
        mlp(x).sum().backward()
    r = count_flops(mlp, x, backward=True, loss_fn=lambda y: y.sum())
    assert r.matmul == ref.get_total_flops()


# ----------------------------------------------------------------------------------------------
# message passing: gather -> linear -> index_add


class _MessagePassing(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.lin = nn.Linear(c_in, c_out)

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        src, dst = edge_index
        m = self.lin(h[src])  # gather (0) + linear
        out = h.new_zeros(h.shape[0], m.shape[1]).index_add_(0, dst, m)  # 1 per source element
        deg = torch.bincount(dst, minlength=h.shape[0]).clamp(min=1).to(h.dtype)  # integer: 0
        return out / deg[:, None]  # 1 per output element


def test_message_passing_exact():
    n, E, c_in, c_out = 7, 23, 5, 4
    layer = _seeded(lambda: _MessagePassing(c_in, c_out))
    g = _gen(1)
    h = torch.randn(n, c_in, generator=g)
    edge_index = torch.randint(0, n, (2, E), generator=g)
    r = count_flops(layer, h, edge_index)
    assert r.matmul == 2 * E * c_in * c_out
    assert r.by_op["aten.addmm"] == 2 * E * c_in * c_out + E * c_out
    assert r.by_op["aten.index_add_"] == E * c_out
    assert r.by_op["aten.div"] == n * c_out
    assert r.total == 2 * E * c_in * c_out + E * c_out + E * c_out + n * c_out
    assert "aten.index" not in r.by_op and dict(r.uncounted) == {}


def test_message_passing_backward_scatter_is_gather_and_gather_is_scatter():
    """Backward of index_add is a gather (0); backward of the gather h[src] is a scatter-add
    (1 per element of the gathered tensor)."""
    n, E, c_in, c_out = 7, 23, 5, 4
    layer = _seeded(lambda: _MessagePassing(c_in, c_out))
    g = _gen(1)
    h = torch.randn(n, c_in, generator=g).requires_grad_(True)
    edge_index = torch.randint(0, n, (2, E), generator=g)
    r = count_flops(layer, h, edge_index, backward=True, loss_fn=lambda y: y.sum())
    assert r.by_op["aten.index_put"] == E * c_in
    assert r.matmul == 3 * 2 * E * c_in * c_out


# ----------------------------------------------------------------------------------------------
# GPT-style transformer: 6N + 12·L·H·Q·T (PaLM, appendix B)


class _Block(nn.Module):
    def __init__(self, d: int, n_head: int, sdpa: bool) -> None:
        super().__init__()
        self.n_head, self.sdpa = n_head, sdpa
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        if self.sdpa:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.n_head)
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            a = s.masked_fill(mask, float("-inf")).softmax(dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class _GPT(nn.Module):
    def __init__(self, vocab: int, d: int, n_layer: int, n_head: int, t_max: int, *, tied: bool,
                 sdpa: bool) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(t_max, d)
        self.blocks = nn.ModuleList(_Block(d, n_head, sdpa) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        if tied:
            self.head.weight = self.tok.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


def _gpt_case(tied: bool, sdpa: bool):
    vocab, d, n_layer, n_head, t = 256, 128, 2, 4, 32
    batch = 2
    model = _seeded(lambda: _GPT(vocab, d, n_layer, n_head, t, tied=tied, sdpa=sdpa))
    g = _gen(2)
    idx = torch.randint(0, vocab, (batch, t), generator=g)
    target = torch.randint(0, vocab, (batch, t), generator=g)
    # N without the embedding lookups (gathers); a tied head is a matmul and counts once.
    lookups = {id(model.tok.weight), id(model.pos.weight)}
    n_params = sum(p.numel() for p in model.parameters() if id(p) not in lookups)
    if tied:
        n_params += model.tok.weight.numel()
    # parameters used as matmul weights (excludes biases and layer-norm affine parameters)
    n_matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    r = count_flops(model, idx, backward=True,
                    loss_fn=lambda logits: F.cross_entropy(logits.reshape(-1, vocab), target.reshape(-1)))
    tokens = batch * t
    return r, tokens, n_params, n_matmul, (n_layer, n_head, d // n_head, t), model, idx


@pytest.mark.parametrize("tied", [False, True])
def test_gpt_training_matmul_matches_palm_formula(tied):
    r, tokens, n_params, n_matmul, (L, H, Q, T), *_ = _gpt_case(tied, sdpa=False)
    per_token = r.matmul / tokens
    palm = 6 * n_params + 12 * L * H * Q * T
    assert abs(per_token - palm) / palm < 0.01
    # exact: every matmul weight costs 6 FLOPs per token, attention 12·L·H·Q·T
    assert r.matmul == tokens * (6 * n_matmul + 12 * L * H * Q * T)
    assert dict(r.uncounted) == {}


def test_gpt_backward_is_twice_forward_for_matmuls():
    r, tokens, _, n_matmul, (L, H, Q, T), model, idx = _gpt_case(False, sdpa=False)
    fwd = count_flops(model, idx)
    assert fwd.matmul == tokens * (2 * n_matmul + 4 * L * H * Q * T)
    assert r.matmul == 3 * fwd.matmul
    # per-module attribution of the backward: a Linear's backward is two matmuls of the forward's
    # size plus the bias gradient (a sum, 1 per element); its forward is one matmul + bias add
    d = H * Q
    assert r.by_module_backward["blocks.0.qkv"] == 2 * r.by_module["blocks.0.qkv"] - tokens * 3 * d
    assert r.by_module_backward["head"] == 2 * r.by_module["head"]  # no bias
    # the embedding lookup is free; its backward is a scatter-add of one row per token
    assert r.by_module["tok"] == 0 and r.by_module_backward["tok"] == tokens * d
    assert list(r.by_module)[:3] == ["", "tok", "pos"]  # every module called, in call order


def test_gpt_sdpa_forward_equals_explicit_attention_matmuls():
    """CPU fused attention: torch's formula (2 matmuls forward, causal mask not discounted) --
    equal to the explicit q@kᵀ, a@v matmuls; its backward formula (torch's) has 5 matmuls
    (the flash kernel recomputes the scores), so a training step has 14·L·H·Q·T, not 12."""
    _, tokens, _, n_matmul, (L, H, Q, T), m_exp, idx = _gpt_case(False, sdpa=False)
    r_sdpa, _, _, _, _, m_sdpa, idx2 = _gpt_case(False, sdpa=True)
    assert count_flops(m_sdpa, idx2).matmul == count_flops(m_exp, idx).matmul
    assert r_sdpa.matmul == tokens * (6 * n_matmul + 14 * L * H * Q * T)
    assert dict(r_sdpa.uncounted) == {}


def test_sdpa_cpu_kernel_exact():
    b, h, s, d = 2, 3, 16, 8
    q, k, v = (torch.randn(b, h, s, d, generator=_gen(i)) for i in range(3))
    r = count_flops(F.scaled_dot_product_attention, q, k, v)
    assert r.matmul == 4 * b * h * s * s * d
    assert r.total == 4 * b * h * s * s * d + b * h * s * s  # + softmax, 1 per score


# ----------------------------------------------------------------------------------------------
# conservative forces: autograd.grad inside forward


class _EnergyModel(nn.Module):
    """E = Σ_atoms lin2(silu(lin1(x))); forces = -∂E/∂x, computed inside forward."""

    def __init__(self, h: int) -> None:
        super().__init__()
        self.lin1, self.act, self.lin2 = nn.Linear(3, h), nn.SiLU(), nn.Linear(h, 1)

    def energy(self, pos: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(pos))).sum()

    def forward(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = pos.detach().requires_grad_(True)
        e = self.energy(pos)
        (grad,) = torch.autograd.grad(e, pos, create_graph=self.training)
        return e, -grad


def test_conservative_forces_counted_in_forward():
    n, h = 11, 16
    model = _seeded(lambda: _EnergyModel(h))
    pos = torch.randn(n, 3, generator=_gen())
    r = count_flops(model, pos)
    e_only = count_flops(model.energy, pos)
    # the force pass runs one matmul per layer of the same size (no weight gradients needed)
    assert r.matmul == 2 * e_only.matmul == 2 * (2 * n * 3 * h + 2 * n * h)
    # lin1: forward addmm (+ bias) and the grad_input mm of the force pass, attributed to lin1
    assert r.by_module["lin1"] == 2 * (2 * n * 3 * h) + n * h
    assert r.by_module["lin2"] == 2 * (2 * n * h) + n
    assert r.by_module[""] == r.forward == r.total
    assert r.total > e_only.total


def test_conservative_forces_training_step_double_backward():
    n, h = 11, 16
    model = _seeded(lambda: _EnergyModel(h))
    pos = torch.randn(n, 3, generator=_gen())
    e_ref = torch.tensor(0.3)
    f_ref = torch.randn(n, 3, generator=_gen(5))

    def loss_fn(out):
        e, f = out
        return (e - e_ref) ** 2 + (f - f_ref).square().mean()

    r = count_flops(model, pos, backward=True, loss_fn=loss_fn)
    fwd = count_flops(model, pos)
    assert r.backward > 0 and r.forward > fwd.total  # loss adds a little to the forward
    # the same training step written out by hand (loss.backward(), which also differentiates
    # the leaf positions created in forward), counted without backward=True
    params = list(model.parameters())

    def step(pos):
        loss_fn(model(pos)).backward()

    manual = count_flops(step, pos)
    assert manual.total == r.total and manual.matmul == r.matmul
    g_counted = [p.grad.clone() for p in params]
    # the counted gradients are the real ones (counting is transparent)
    model.zero_grad(set_to_none=True)
    step(pos)
    for p, g in zip(params, g_counted):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)
    # the double backward reaches the weights through both the energy and the force path
    assert r.by_module_backward["lin1"] > 0 and r.by_module_backward["lin2"] > 0


# ----------------------------------------------------------------------------------------------
# torch.compile, float64, inference mode


def test_compiled_module_counts_eager_ops():
    mlp = _mlp()
    x = torch.randn(4, 6, generator=_gen())
    eager = count_flops(mlp, x, backward=True, loss_fn=lambda y: y.sum())
    compiled = torch.compile(mlp, backend="eager")
    r = count_flops(compiled, x, backward=True, loss_fn=lambda y: y.sum())
    assert r == eager
    torch.testing.assert_close(compiled(x), mlp(x))  # still usable afterwards


def test_compiled_submodule_and_function():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = torch.compile(_mlp(), backend="eager")
            self.lin = nn.Linear(2, 3)

        def forward(self, x):
            return self.lin(self.inner(x))

    model = _seeded(Outer)
    x = torch.randn(4, 6, generator=_gen())
    r = count_flops(model, x)
    assert "inner.0" in r.by_module and not any("_orig_mod" in k for k in r.by_module)
    assert r.by_module["inner"] == count_flops(model.inner, x).total
    fn = torch.compile(lambda z: model(z).sum(), backend="eager")
    assert count_flops(fn, x).total == r.total + 4 * 3


def test_float64_counts_equal_float32():
    n, h = 9, 8
    m32 = _seeded(lambda: _EnergyModel(h))
    m64 = _seeded(lambda: _EnergyModel(h)).double()
    pos = torch.randn(n, 3, generator=_gen())

    def loss_fn(out):
        return out[0] ** 2 + out[1].square().sum()

    r32 = count_flops(m32, pos, backward=True, loss_fn=loss_fn)
    r64 = count_flops(m64, pos.double(), backward=True, loss_fn=loss_fn)
    assert r32 == r64 and r64.total > 0


def test_inference_mode_decomposes_composites():
    lin = _seeded(lambda: nn.Linear(4, 3))
    x = torch.randn(10, 4, generator=_gen())
    with torch.inference_mode():
        r = count_flops(lin, x)
    assert r.total == 2 * 10 * 4 * 3 + 10 * 3


# ----------------------------------------------------------------------------------------------
# op rules


def test_rules_reduction_softmax_scatter_gather():
    g = _gen(3)
    x = torch.randn(6, 5, generator=g)
    idx = torch.randint(0, 4, (6,), generator=g)
    assert count_flops(torch.sum, x, 1).total == 30
    assert count_flops(torch.mean, x).total == 30
    assert count_flops(torch.amax, x, 0).total == 30
    assert count_flops(torch.linalg.vector_norm, x, dim=1).total == 30
    assert count_flops(torch.softmax, x, 1).total == 30
    assert count_flops(torch.cumsum, x, 0).total == 30
    assert count_flops(torch.index_select, x, 0, idx).total == 0
    assert count_flops(torch.gather, x, 1, torch.zeros(6, 2, dtype=torch.long)).total == 0
    assert count_flops(lambda: x[idx]).total == 0
    assert count_flops(lambda: x.t().contiguous().clone().to(torch.float64)).total == 0
    assert count_flops(lambda: torch.cat([x, x])).total == 0
    emb = nn.Embedding(10, 4)
    assert count_flops(emb, idx).total == 0
    out = torch.zeros(4, 5)
    assert count_flops(lambda: out.index_add(0, idx, x)).total == 30
    assert count_flops(lambda: out.scatter_add(0, idx[:, None].expand(6, 5), x)).total == 30
    assert count_flops(lambda: out.scatter_reduce(0, idx[:, None].expand(6, 5), x, "amax")).total == 30
    assert count_flops(lambda: out.scatter(0, idx[:, None].expand(6, 5), x)).total == 0  # a copy
    assert count_flops(lambda: x + x).total == 30
    assert count_flops(lambda: x.exp() * 2.0).total == 60
    assert count_flops(lambda: torch.where(x > 0, x, 0.0)).total == 60  # compare + select
    # integer bookkeeping is not floating-point work
    assert count_flops(lambda: (idx * 3 + 1).sum()).total == 0


def test_decomposed_ops_count_like_their_decomposition():
    from torch._decomp import decomposition_table

    g = _gen(4)
    x = torch.randn(8, 16, generator=g)
    w, b = torch.randn(16, generator=g), torch.randn(16, generator=g)
    r = count_flops(F.layer_norm, x, (16,), w, b)
    ref = count_flops(decomposition_table[torch.ops.aten.native_layer_norm.default], x, [16], w, b, 1e-5)
    assert r.by_op["aten.native_layer_norm"] == ref.total > 5 * x.numel()
    y = torch.randn(8, 16, generator=g)
    assert count_flops(F.mse_loss, x, y).total == 3 * x.numel()  # sub, square, mean


def test_uncounted_ops_are_reported():
    @torch.library.custom_op("nnip_flops_test::mystery", mutates_args=())
    def mystery(x: torch.Tensor) -> torch.Tensor:
        return x * 2

    x = torch.randn(5)
    with pytest.warns(UserWarning, match=r"nnip_flops_test.mystery \(x1 calls; 50% of the total"):
        r = count_flops(lambda z: mystery(z) + 1, x)
    assert dict(r.uncounted) == {"nnip_flops_test.mystery": 1}
    assert dict(r.uncounted_elements) == {"nnip_flops_test.mystery": 5}
    assert r.uncounted_share("nnip_flops_test.mystery") == 0.5  # 5 of 5 + 5
    assert r.total == 5  # the add; the unknown op counts 0
    a = torch.randn(4, 4, generator=_gen())
    with pytest.warns(UserWarning, match="aten._linalg_eigh"):
        r = count_flops(torch.linalg.eigh, a @ a.T)
    assert r.uncounted["aten._linalg_eigh"] == 1
    assert "without a FLOP rule" in r.table()


def test_report_is_transparent_and_hooks_are_removed():
    hooks = torch.nn.modules.module
    n_pre, n_post = len(hooks._global_forward_pre_hooks), len(hooks._global_forward_hooks)
    mlp = _mlp()
    x = torch.randn(3, 6, generator=_gen())

    def boom(z):
        mlp(z)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        count_flops(boom, x)
    assert len(hooks._global_forward_pre_hooks) == n_pre
    assert len(hooks._global_forward_hooks) == n_post
    # the next count is unaffected by the failed one
    assert count_flops(mlp, x) == count_flops(mlp, x)


def test_function_roots_name_modules_by_class():
    mlp = _mlp()
    x = torch.randn(3, 6, generator=_gen())
    r = count_flops(lambda z: mlp(z) * 2, x)
    assert r.by_module["Sequential"] + 3 * 2 == r.total
    assert r.by_module["Sequential.0"] == count_flops(mlp, x).by_module["0"]
    bound = count_flops(mlp.forward, x)  # a bound method names modules from its owner
    assert bound.by_module == count_flops(mlp, x).by_module


def test_table_and_str():
    r = count_flops(_mlp(), torch.randn(3, 6, generator=_gen()), backward=False)
    s = str(r)
    assert "aten.addmm" in s and "(root)" in s and "matmul" in s
    assert len(r.table(max_depth=0).splitlines()) < len(s.splitlines())
    assert r.non_matmul == r.total - r.matmul
    assert isinstance(r, FlopReport)
    with pytest.raises(ValueError, match="max_depth"):
        r.table(max_depth=-1)


def test_bad_input():
    x = torch.randn(3, 6)
    with pytest.raises(TypeError, match="fn_or_module"):
        count_flops(3, x)
    with pytest.raises(TypeError, match="backward"):
        count_flops(_mlp(), x, backward=1)
    with pytest.raises(ValueError, match="loss_fn"):
        count_flops(_mlp(), x, loss_fn=lambda y: y.sum())
    with pytest.raises(TypeError, match="loss_fn"):
        count_flops(_mlp(), x, backward=True, loss_fn="sum")
    with pytest.raises(ValueError, match="scalar"):
        count_flops(_mlp(), x, backward=True)  # output [3, 2], no loss_fn
    with pytest.raises(TypeError, match="loss_fn"):
        count_flops(lambda z: (z, z), x, backward=True)
    with pytest.raises(ValueError, match="grad"):
        count_flops(lambda z: z.sum(), x, backward=True)  # nothing requires grad
