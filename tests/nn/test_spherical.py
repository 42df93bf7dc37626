"""SO(2) convolution and SO2Block: exactness against the e3nn tensor product, equivariance, gradients."""

import math

import pytest
import torch

from nnip_scaling.geometry import random_rotation, spherical_harmonics, wigner_D_block_diagonal
from nnip_scaling.nn import SO2Block
from nnip_scaling.nn.so2 import (
    edge_wigner,
    from_edge_frame,
    so2_layout,
    so2_linear,
    so2_weights_from_tensor_product,
    tensor_product_paths,
    to_edge_frame,
)
from nnip_scaling.nn.spherical import EquivariantRMSNorm, Gate, SO2Linear, SO3Linear
from nnip_scaling.geometry._e3nn import e3nn_o3, e3nn_version

o3 = e3nn_o3()
# The e3nn tensor product is the reference only where its Wigner 3j signs are ours (e3nn >= 0.5);
# e3nn 0.4.x flips the sign of some 3j symbols (tests/geometry/test_clebsch_gordan.py).
e3nn_tp_reference = pytest.mark.skipif(
    e3nn_version() < (0, 5),
    reason="e3nn < 0.5 uses other signs for some Wigner 3j symbols than ours (e3nn >= 0.5's)",
)

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _edges(n_atoms, gen, *, special=True):
    """A small random graph (all ordered pairs) plus edges exactly along +y and -y."""
    pos = torch.randn(n_atoms, 3, generator=gen, dtype=F64) * 1.5
    if special:  # atoms 0, 1, 2 on the y axis: edges 0<->1 and 1<->2 are along +-y
        pos[0] = torch.tensor([0.0, 0.0, 0.0], dtype=F64)
        pos[1] = torch.tensor([0.0, 1.2, 0.0], dtype=F64)
        pos[2] = torch.tensor([0.0, 2.9, 0.0], dtype=F64)
    src, dst = torch.meshgrid(torch.arange(n_atoms), torch.arange(n_atoms), indexing="ij")
    keep = src != dst
    edge_index = torch.stack((src[keep], dst[keep]))
    return pos, edge_index


# ----------------------------------------------------------------------------------------------
# layout and edge frame
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("l_max,m_max", [(0, 0), (1, 1), (4, 2), (6, 3), (6, 6)])
def test_layout_index_maps(l_max, m_max):
    lay = so2_layout(l_max, m_max)
    assert lay.m_sizes == tuple(l_max - m + 1 for m in range(m_max + 1))
    assert lay.n_rows == len(lay.lm_index) == (l_max + 1) + 2 * sum(lay.m_sizes[1:])
    assert lay.n_shared == sum(lay.m_sizes)
    for row, (lm, l, m, s) in enumerate(zip(lay.lm_index, lay.row_degree, lay.row_order, lay.row_shared)):
        assert lm == l * l + l + m and abs(m) <= min(l, m_max)
        # +m and -m rows of the same degree share their modulation slot
        partner = lay.lm_index.index(l * l + l - m)
        assert lay.row_shared[partner] == s
    assert len(set(lay.lm_index)) == lay.n_rows  # no row twice
    assert lay.row_degree[0] == 0 and all(d >= 1 for d in lay.row_degree[1:])
    if m_max == l_max:
        assert sorted(lay.lm_index) == list(range((l_max + 1) ** 2))


def test_layout_rejects_bad_arguments():
    with pytest.raises(ValueError, match="m_max"):
        so2_layout(2, 3)
    with pytest.raises(ValueError, match="l_max"):
        so2_layout(-1, 0)
    with pytest.raises(TypeError, match="m_max"):
        so2_layout(2, 1.0)


def test_edge_wigner_rows_align_edges_and_are_orthonormal():
    gen = _gen(1)
    lay = so2_layout(5, 5)
    vec = torch.randn(12, 3, generator=gen, dtype=F64)
    vec[0], vec[1] = torch.tensor([0.0, 2.0, 0.0], dtype=F64), torch.tensor([0.0, -0.7, 0.0], dtype=F64)
    w = edge_wigner(vec, lay)
    assert w.shape == (12, lay.n_rows, lay.dim)
    eye = torch.eye(lay.n_rows, dtype=F64).expand(12, -1, -1)
    torch.testing.assert_close(w @ w.transpose(1, 2), eye, atol=1e-12, rtol=0)
    # the spherical harmonics of the edge, rotated into the frame, live on the m = 0 rows only:
    # W Y(r) = sqrt(2l+1) on the rows (l, 0)
    y = spherical_harmonics(5, vec)
    rotated = (w @ y[..., None])[..., 0]
    expect = torch.zeros_like(rotated)
    expect[:, : lay.m_sizes[0]] = torch.sqrt(2 * torch.arange(6, dtype=F64) + 1)
    torch.testing.assert_close(rotated, expect, atol=1e-12, rtol=0)


def test_edge_wigner_gradient_finite_along_y():
    lay = so2_layout(4, 2)
    vec = torch.tensor([[0.0, 1.3, 0.0], [0.0, -2.0, 0.0], [1e-12, 1.0, -1e-12], [0.3, -0.2, 0.9]], dtype=F64)
    vec.requires_grad_(True)
    w = edge_wigner(vec, lay)
    (g,) = torch.autograd.grad((w * torch.randn(w.shape, generator=_gen(), dtype=F64)).sum(), vec)
    assert torch.isfinite(w).all() and torch.isfinite(g).all()


# ----------------------------------------------------------------------------------------------
# exactness: SO(2) convolution == Clebsch-Gordan tensor-product convolution (eq. 14 vs 18-22)
# ----------------------------------------------------------------------------------------------
def _to_e3nn(x, l_max):
    """[B, (l_max+1)^2, C] -> e3nn's flat layout of C x 0e + C x 1e + ... (channel-major per degree)."""
    return torch.cat([x[:, l * l : (l + 1) ** 2, :].transpose(1, 2).reshape(x.shape[0], -1) for l in range(l_max + 1)], 1)


def _from_e3nn(z, l_max, c):
    out, off = [], 0
    for l in range(l_max + 1):
        n = c * (2 * l + 1)
        out.append(z[:, off : off + n].reshape(-1, c, 2 * l + 1).transpose(1, 2))
        off += n
    return torch.cat(out, 1)


def _tp_convolution(h, pos, edge_index, weights, paths, l_max, l_sh_max, c_out):
    """Reference eq. 14 with e3nn: m_uv = sum_paths w (h_u (x) Y(r_uv)), mean over incoming edges.

    Parities are all even so that every triangle-allowed path exists (SO(3) only); with
    irrep/path normalisation 'none' e3nn computes exactly sum_{m1 m2} W3j[m1, m2, m3] x1 x2 per path.
    """
    c_in = h.shape[-1]
    irr_in = o3.Irreps([(c_in, (l, 1)) for l in range(l_max + 1)])
    irr_sh = o3.Irreps([(1, (l, 1)) for l in range(l_sh_max + 1)])
    irr_out = o3.Irreps([(c_out, (l, 1)) for l in range(l_max + 1)])
    # e3nn builds its Wigner-3j buffers in the default dtype: build in float64 (float32 CG
    # coefficients would be rounded to ~1e-8 and mask the comparison)
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        tp = o3.TensorProduct(
            irr_in,
            irr_sh,
            irr_out,
            [(l1, l2, l3, "uvw", True) for (l1, l2, l3) in paths],
            irrep_normalization="none",
            path_normalization="none",
            internal_weights=False,
            shared_weights=True,
        )
    finally:
        torch.set_default_dtype(old)
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    sh = spherical_harmonics(l_sh_max, vec)
    msg = _from_e3nn(tp(_to_e3nn(h[edge_index[0]], l_max), sh, weights.reshape(-1)), l_max, c_out)
    return _mean_aggregate(msg, edge_index[1], h.shape[0])


def _mean_aggregate(msg, dst, n):
    out = msg.new_zeros(n, *msg.shape[1:]).index_add_(0, dst, msg)
    deg = torch.bincount(dst, minlength=n).clamp(min=1).to(msg.dtype)
    return out / deg[:, None, None]


def _so2_convolution(h, pos, edge_index, module, layout, roll=None):
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    w = edge_wigner(vec, layout, roll_angle=roll)
    msg = from_edge_frame(module(to_edge_frame(h[edge_index[0]], w)), w)
    return _mean_aggregate(msg, edge_index[1], h.shape[0])


@pytest.mark.parametrize("l_max,l_sh_max", [(1, 2), (2, 2), (2, 4), (3, 6), (4, 4)])
@e3nn_tp_reference
def test_so2_convolution_equals_tensor_product(l_max, l_sh_max):
    gen = _gen(l_max)
    c_in, c_out, n_atoms = 3, 2, 6
    pos, edge_index = _edges(n_atoms, gen)
    h = torch.randn(n_atoms, (l_max + 1) ** 2, c_in, generator=gen, dtype=F64)
    paths = tensor_product_paths(l_max, l_sh_max)
    weights = torch.randn(len(paths), c_in, c_out, generator=gen, dtype=F64)
    ref = _tp_convolution(h, pos, edge_index, weights, paths, l_max, l_sh_max, c_out)

    layout = so2_layout(l_max, l_max)
    w0, wm = so2_weights_from_tensor_product(weights, paths, layout)
    module = SO2Linear(c_in, c_out, l_max=l_max, m_max=l_max, bias=False).to(F64)
    with torch.no_grad():
        module.weight_m0.copy_(w0)
        for p, w in zip(module.weights_m, wm):
            p.copy_(w)
    out = _so2_convolution(h, pos, edge_index, module, layout)
    assert ref.abs().max() > 0.1  # a non-trivial comparison
    err = (out - ref).abs().max() / ref.abs().max()
    assert err < 1e-10, f"SO(2) convolution differs from the tensor product: {err:.2e}"
    # and the result does not depend on the roll of the edge frames
    roll = torch.rand(edge_index.shape[1], generator=gen, dtype=F64) * 2 * math.pi
    out_rolled = _so2_convolution(h, pos, edge_index, module, layout, roll=roll)
    assert (out_rolled - ref).abs().max() / ref.abs().max() < 1e-10


@e3nn_tp_reference
def test_tensor_product_comparison_detects_a_wrong_sign():
    """The exactness test can fail: flipping the sign of W^(2) (eq. 19) breaks the agreement."""
    gen = _gen(7)
    l_max, c_in, c_out = 2, 2, 2
    pos, edge_index = _edges(5, gen)
    h = torch.randn(5, 9, c_in, generator=gen, dtype=F64)
    paths = tensor_product_paths(l_max, 2)
    weights = torch.randn(len(paths), c_in, c_out, generator=gen, dtype=F64)
    ref = _tp_convolution(h, pos, edge_index, weights, paths, l_max, 2, c_out)
    layout = so2_layout(l_max, l_max)
    w0, wm = so2_weights_from_tensor_product(weights, paths, layout)
    n1 = layout.m_sizes[1] * c_out
    wm_bad = [torch.cat((w[:, :n1], -w[:, n1:]), 1) for w in wm]
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    wig = edge_wigner(vec, layout)
    bad = from_edge_frame(so2_linear(to_edge_frame(h[edge_index[0]], wig), w0, None, wm_bad, layout), wig)
    assert (_mean_aggregate(bad, edge_index[1], 5) - ref).abs().max() > 1e-3


def test_truncated_tensor_product_is_the_m_restriction():
    """m_max < l_max: the SO(2) map equals the tensor product restricted to |m| <= m_max in the edge frame."""
    gen = _gen(3)
    l_max, m_max, c = 3, 1, 2
    paths = tensor_product_paths(l_max, l_max)
    weights = torch.randn(len(paths), c, c, generator=gen, dtype=F64)
    full, trunc = so2_layout(l_max, l_max), so2_layout(l_max, m_max)
    w0f, wmf = so2_weights_from_tensor_product(weights, paths, full)
    w0t, wmt = so2_weights_from_tensor_product(weights, paths, trunc)
    torch.testing.assert_close(w0f, w0t, rtol=0, atol=0)
    for a, b in zip(wmf[:m_max], wmt):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    x = torch.randn(4, full.n_rows, c, generator=gen, dtype=F64)
    keep = [full.lm_index.index(i) for i in trunc.lm_index]
    y_full = so2_linear(x, w0f, None, wmf, full)[:, keep]
    y_trunc = so2_linear(x[:, keep], w0t, None, wmt, trunc)
    torch.testing.assert_close(y_full, y_trunc, rtol=0, atol=1e-13)


def test_weight_map_rejects_bad_paths():
    lay = so2_layout(2, 2)
    with pytest.raises(ValueError, match="path"):
        so2_weights_from_tensor_product(torch.zeros(1, 1, 1, dtype=F64), [(1, 3, 1)], lay)
    with pytest.raises(ValueError, match="paths"):
        so2_weights_from_tensor_product(torch.zeros(2, 1, 1, dtype=F64), [(1, 1, 1)], lay)


# ----------------------------------------------------------------------------------------------
# equivariance of the building blocks and of SO2Block (float64, to 1e-10)
# ----------------------------------------------------------------------------------------------
def _rotate_features(x, q, l_max):
    d = wigner_D_block_diagonal(l_max, q)
    return torch.einsum("ij,njc->nic", d, x)


def _block_inputs(l_max, m_max, c, gen, n_atoms=6, n_edge_features=5):
    pos, edge_index = _edges(n_atoms, gen)
    x = torch.randn(n_atoms, (l_max + 1) ** 2, c, generator=gen, dtype=F64)
    edge_scalars = torch.randn(edge_index.shape[1], n_edge_features, generator=gen, dtype=F64)
    edge_weight = torch.rand(edge_index.shape[1], generator=gen, dtype=F64)
    return pos, edge_index, x, edge_scalars, edge_weight


def _run_block(block, pos, edge_index, x, edge_scalars, edge_weight, roll=None):
    vec = pos[edge_index[0]] - pos[edge_index[1]]
    return block(x, edge_index, edge_scalars, edge_wigner(vec, block.layout, roll_angle=roll), edge_weight)


@pytest.mark.parametrize("l_max,m_max", [(1, 1), (2, 1), (2, 2), (4, 2), (6, 2), (3, 0)])
def test_so2_block_is_equivariant(l_max, m_max):
    gen = _gen(10 + l_max)
    torch.manual_seed(l_max)
    c = 3
    block = SO2Block(c, hidden_channels=4, l_max=l_max, m_max=m_max, edge_features=5, edge_channels=6).to(F64)
    pos, edge_index, x, es, ew = _block_inputs(l_max, m_max, c, gen)
    out = _run_block(block, pos, edge_index, x, es, ew)
    assert out.shape == x.shape
    q = random_rotation(generator=gen, dtype=F64)
    out_rot = _run_block(block, pos @ q.T, edge_index, _rotate_features(x, q, l_max), es, ew)
    expect = _rotate_features(out, q, l_max)
    err = (out_rot - expect).norm() / expect.norm()
    assert err < 1e-10, f"SO2Block not equivariant: {err:.2e}"
    # the roll of the edge frames about the edge axis does not matter
    roll = torch.rand(edge_index.shape[1], generator=gen, dtype=F64) * 2 * math.pi
    out_roll = _run_block(block, pos, edge_index, x, es, ew, roll=roll)
    assert (out_roll - out).norm() / out.norm() < 1e-10


def _reference_edge_messages(block, x, edge_index, edge_scalars, wigner, edge_weight):
    """SO2Block's edge messages written plainly from the public pieces (the block's docstring formula):
    concatenate, rotate, modulate, SO(2) map, gate, SO(2) map, weight, rotate back."""
    lay, c = block.layout, block.channels
    pair = torch.cat((x[edge_index[0]], x[edge_index[1]]), dim=-1)
    z = to_edge_frame(pair, wigner)
    rad = block.radial(edge_scalars).reshape(-1, lay.n_shared, 2 * c)
    n0 = lay.m_sizes[0]
    gates = block.edge_gate_linear((z[:, :n0] * rad[:, :n0]).reshape(z.shape[0], -1))
    c1, c2 = block.conv_1, block.conv_2
    y = so2_linear(z, c1.weight_m0, c1.bias_m0, list(c1.weights_m), lay, modulation=rad)
    y = Gate(lay.row_degree)(y, gates.reshape(-1, lay.l_max, block.hidden_channels))
    y = so2_linear(y, c2.weight_m0, c2.bias_m0, list(c2.weights_m), lay) * edge_weight[:, None, None]
    return from_edge_frame(y, wigner)


@pytest.mark.parametrize("l_max,m_max", [(1, 1), (3, 0), (4, 2), (6, 3)])
def test_so2_block_edge_messages_equal_the_plain_formula(l_max, m_max):
    """The block's fused order-block pipeline is a re-arrangement, not an approximation."""
    gen = _gen(40 + l_max)
    torch.manual_seed(l_max)
    block = SO2Block(3, hidden_channels=4, l_max=l_max, m_max=m_max, edge_features=5, edge_channels=6).to(F64)
    pos, edge_index, x, es, ew = _block_inputs(l_max, m_max, 3, gen)
    wigner = edge_wigner(pos[edge_index[0]] - pos[edge_index[1]], block.layout)
    got = block.edge_messages(x, edge_index, es, wigner, ew)
    ref = _reference_edge_messages(block, x, edge_index, es, wigner, ew)
    assert (got - ref).norm() / ref.norm() < 1e-13


def test_equivariance_check_detects_unshared_modulation():
    """The equivariance check can fail: scaling +m and -m rows differently breaks the roll symmetry."""
    gen = _gen(5)
    torch.manual_seed(0)
    lay = so2_layout(2, 2)
    module = SO2Linear(2, 2, l_max=2, m_max=2).to(F64)
    pos, edge_index = _edges(5, gen)
    h = torch.randn(5, 9, 2, generator=gen, dtype=F64)
    scale = torch.ones(lay.n_rows, 1, dtype=F64)
    scale[lay.row_order.index(1)] = 2.0  # one +m row only

    def conv(p, hh):
        vec = p[edge_index[0]] - p[edge_index[1]]
        w = edge_wigner(vec, lay)
        return from_edge_frame(module(to_edge_frame(hh[edge_index[0]], w) * scale), w)

    q = random_rotation(generator=gen, dtype=F64)
    expect = _rotate_features(conv(pos, h), q, 2)
    err = (conv(pos @ q.T, _rotate_features(h, q, 2)) - expect).norm() / expect.norm()
    assert err > 1e-4


@pytest.mark.parametrize("l_max", [1, 3])
def test_norm_gate_and_so3_linear_are_equivariant(l_max):
    gen = _gen(l_max)
    torch.manual_seed(1)
    c = 4
    x = torch.randn(5, (l_max + 1) ** 2, c, generator=gen, dtype=F64)
    gates = torch.randn(5, l_max, c, generator=gen, dtype=F64)
    q = random_rotation(generator=gen, dtype=F64)
    norm = EquivariantRMSNorm(l_max, c).to(F64)
    with torch.no_grad():
        norm.weight.normal_(generator=gen)
        norm.bias.normal_(generator=gen)
    lin = SO3Linear(c, 3, l_max=l_max).to(F64)
    gate = Gate([l for l in range(l_max + 1) for _ in range(2 * l + 1)])
    for f in (norm, lin, lambda t: gate(t, gates)):
        y = f(x)
        torch.testing.assert_close(f(_rotate_features(x, q, l_max)), _rotate_features(y, q, l_max), rtol=0, atol=1e-12)
    # RMS norm output has unit mean square (balanced over degrees) before the affine part
    plain = EquivariantRMSNorm(l_max, c, eps=0.0).to(F64)(x)
    bal = torch.tensor([1 / ((2 * l + 1) * (l_max + 1)) for l in range(l_max + 1) for _ in range(2 * l + 1)], dtype=F64)
    torch.testing.assert_close((plain.pow(2) * bal[None, :, None]).sum(1).mean(-1), torch.ones(5, dtype=F64))


# ----------------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------------
def test_so2_block_gradcheck():
    gen = _gen(2)
    torch.manual_seed(2)
    l_max, m_max, c = 2, 1, 2
    block = SO2Block(c, hidden_channels=2, l_max=l_max, m_max=m_max, edge_features=3, edge_channels=3).to(F64)
    pos, edge_index = _edges(4, gen)  # includes edges along +y and -y
    x = torch.randn(4, 9, c, generator=gen, dtype=F64, requires_grad=True)
    es = torch.randn(edge_index.shape[1], 3, generator=gen, dtype=F64, requires_grad=True)
    ew = torch.rand(edge_index.shape[1], generator=gen, dtype=F64)
    pos.requires_grad_(True)

    def f(x_, pos_, es_):
        return _run_block(block, pos_, edge_index, x_, es_, ew)

    assert torch.autograd.gradcheck(f, (x, pos, es), eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True)


def test_so2_block_rejects_bad_shapes():
    block = SO2Block(3, hidden_channels=4, l_max=2, m_max=1, edge_features=5, edge_channels=4)
    lay = block.layout
    ei = torch.zeros(2, 1, dtype=torch.int64)
    with pytest.raises(ValueError, match="x must have shape"):
        block(torch.zeros(2, 4, 3), ei, torch.zeros(1, 5), torch.zeros(1, lay.n_rows, lay.dim), torch.ones(1))
    with pytest.raises(ValueError, match="wigner must have shape"):
        block(torch.zeros(2, 9, 3), ei, torch.zeros(1, 5), torch.zeros(1, 9, 9), torch.ones(1))
    with pytest.raises(ValueError, match="l_max"):
        SO2Block(3, l_max=0, m_max=0, edge_features=5, edge_channels=4)
    with pytest.raises(ValueError, match="m_max"):
        SO2Block(3, l_max=2, m_max=3, edge_features=5, edge_channels=4)
    with pytest.raises(TypeError, match="channels"):
        SO2Block(3.0, l_max=2, m_max=1, edge_features=5, edge_channels=4)


def test_so2_linear_parameter_count():
    for l_max, m_max in [(4, 2), (6, 6), (2, 0)]:
        lin = SO2Linear(5, 7, l_max=l_max, m_max=m_max)
        n = sum(p.numel() for p in lin.parameters())
        expect = (l_max + 1) ** 2 * 35 + (l_max + 1) * 7 + sum(2 * (l_max - m + 1) ** 2 * 35 for m in range(1, m_max + 1))
        assert n == expect


def test_so2_block_traces_as_one_graph():
    """torch.compile sees the whole block as one graph (no graph breaks): no data-dependent Python
    control flow, and the Wigner constants are evaluated once, not traced."""
    dynamo = pytest.importorskip("torch._dynamo")
    gen = _gen(7)
    block = SO2Block(3, hidden_channels=4, l_max=4, m_max=2, edge_features=5, edge_channels=6).to(F64)
    pos, edge_index, x, es, ew = _block_inputs(4, 2, 3, gen)

    def run(p, h):
        return block(h, edge_index, es, edge_wigner(p[edge_index[0]] - p[edge_index[1]], block.layout), ew)

    dynamo.reset()
    explained = dynamo.explain(run)(pos, x)
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1


def test_so2_block_compiles_through_aot_autograd():
    """The compiled block (AOT autograd, as inductor uses it) runs and equals the eager block: the
    Wigner constants of several degrees in one graph are distinct compile-time constants."""
    pytest.importorskip("torch._dynamo")
    gen = _gen(8)
    block = SO2Block(3, hidden_channels=4, l_max=4, m_max=2, edge_features=5, edge_channels=6).to(F64)
    pos, edge_index, x, es, ew = _block_inputs(4, 2, 3, gen)

    def run(p, h):
        return block(h, edge_index, es, edge_wigner(p[edge_index[0]] - p[edge_index[1]], block.layout), ew)

    torch._dynamo.reset()
    compiled = torch.compile(run, backend="aot_eager", fullgraph=True)
    assert torch.allclose(compiled(pos, x), run(pos, x), rtol=1e-12, atol=1e-12)
    torch._dynamo.reset()


def test_inference_in_edge_chunks_equals_one_pass(monkeypatch):
    """Under no_grad the block processes its edges in chunks; the result is the one-pass result."""
    from nnip_scaling.nn import edge_rotation

    gen = _gen(77)
    torch.manual_seed(3)
    block = SO2Block(3, hidden_channels=4, l_max=3, m_max=2, edge_features=5, edge_channels=6).to(F64)
    pos, edge_index, x, es, ew = _block_inputs(3, 2, 3, gen, n_atoms=9)
    with torch.enable_grad():
        one_pass = _run_block(block, pos, edge_index, x, es, ew)  # autograd: all edges at once
    calls = []
    original = block._edge_frame_messages
    monkeypatch.setattr(block, "_edge_frame_messages", lambda *a: calls.append(a[1].shape[1]) or original(*a))
    monkeypatch.setattr(edge_rotation, "CHUNK_NUMEL", 5 * 16 * 6)  # 5 edges per chunk
    with torch.no_grad():
        chunked = _run_block(block, pos, edge_index, x, es, ew)
    assert len(calls) > 2 and sum(calls) == edge_index.shape[1] and max(calls) == 5
    assert (chunked - one_pass).norm() / one_pass.norm() < 1e-13
