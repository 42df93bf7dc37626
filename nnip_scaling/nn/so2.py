r"""SO(2) sparsification of the SO(3) convolution: pure functions (eSCN, Passaro & Zitnick 2023).

The paper (*Scaling Laws and Symmetry*, appendix C.4) writes the SO(3) convolution of a source
feature :math:`h_u = \bigoplus_{l} h_{u,l}` with the spherical harmonics of the edge direction as a
Clebsch-Gordan tensor product (eq. 14),

.. math::

    m_{u\to v,\,l_3} = \sum_{l_1,l_2} w_{l_1 l_2 l_3}
        \big(h_{u,l_1} \otimes Y_{l_2}(\hat r_{uv})\big)_{l_3}.

Rotating every edge onto :math:`+\hat y` with :math:`R_{uv}` (``edge_frame``) leaves only
:math:`Y_{l_2}^{m_2=0}(\hat y) = \sqrt{2l_2+1}` (e3nn ``component`` normalisation), and the
Clebsch-Gordan coefficients :math:`C^{(l_3,m_3)}_{(l_1,m_1),(l_2,0)}` vanish unless
:math:`|m_1| = |m_3|`. The convolution becomes, in the edge frame, a block-diagonal linear map over
the orders :math:`m` (eq. 20-22):

.. math::

    \tilde h = D(R_{uv})\,h_u,\qquad
    y_{0} = \tilde W_0\,\tilde h_{0},\qquad
    \begin{pmatrix} y_{+m} \\ y_{-m}\end{pmatrix} =
    \begin{pmatrix} \tilde W_{m} & -\tilde W_{-m} \\ \tilde W_{-m} & \tilde W_{m}\end{pmatrix}
    \begin{pmatrix} \tilde h_{+m} \\ \tilde h_{-m}\end{pmatrix},\qquad
    m_{u\to v} = D(R_{uv})^\top y,

where :math:`\tilde h_{\pm m}` stacks the coefficients :math:`(l, \pm m)` of all degrees
:math:`l = m..l_{max}` and all channels. The 2x2 block form is exactly the commutant of the
rotations about :math:`y` (which act on each pair :math:`(m, -m)` as a planar rotation by
:math:`m\theta`), so the result does not depend on the roll of the frame about the edge axis, and
the whole map is SO(3)-equivariant for **any** weights and any truncation :math:`m_{max} \le
l_{max}`: the truncation drops the rows/columns with :math:`|m| > m_{max}` in the edge frame, which
is an SO(2)-invariant subspace. With :math:`m_{max} = l_{max}` the map reproduces eq. 14 exactly for
the weights of eq. 18-19 (:func:`so2_weights_from_tensor_product`).

Layouts (see docs/models/spherical.md):

* **l-major** (node features): ``[..., (l_max+1)**2, C]``, degree ``l`` at ``l**2 : (l+1)**2``,
  orders ``m = -l..l`` (e3nn).
* **m-major** (edge frame): ``[..., K, C]`` with only ``|m| <= m_max``: first the ``m = 0`` rows
  ``l = 0..l_max``, then for ``m = 1..m_max`` the ``+m`` rows ``l = m..l_max`` followed by the ``-m``
  rows ``l = m..l_max``. :func:`so2_layout` gives the index maps.

All functions are pure; constant index maps are cached per ``(l_max, m_max)`` (immutable tuples).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from nnip_scaling.geometry import edge_frame, wigner_D_block_diagonal

__all__ = [
    "SO2Layout",
    "so2_layout",
    "edge_wigner",
    "to_edge_frame",
    "from_edge_frame",
    "so2_linear",
    "order_blocks",
    "so2_real_weight",
    "so2_linear_order",
    "so2_linear_m0",
    "tensor_product_paths",
    "so2_weights_from_tensor_product",
]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class SO2Layout:
    r"""Index maps between the l-major node layout and the m-major edge-frame layout.

    Attributes:
        l_max: largest degree.
        m_max: largest order kept in the edge frame (``0 <= m_max <= l_max``).
        m_sizes: ``n_m = l_max - m + 1`` degrees carrying order ``m``, for ``m = 0..m_max``.
        offsets: first m-major row of each ``m`` block (the ``+m`` rows; the ``-m`` rows follow
            ``n_m`` rows later), for ``m = 0..m_max``.
        n_rows: ``K``, the number of m-major rows, :math:`(l_{max}+1) + 2\sum_{m\ge1} n_m`.
        lm_index: for each m-major row, its row in the l-major layout (``l**2 + l + m``).
        row_degree: the degree ``l`` of each m-major row.
        row_order: the signed order ``m`` of each m-major row.
        row_shared: for each m-major row, the index of its ``(l, |m|)`` pair in ``0..n_shared-1``;
            rows ``(l, m)`` and ``(l, -m)`` share it (used for per-edge modulation, which must scale
            both members of a pair equally to commute with the roll).
        n_shared: number of ``(l, |m|)`` pairs, :math:`\sum_{m=0}^{m_{max}} n_m`.
    """

    l_max: int
    m_max: int
    m_sizes: tuple[int, ...]
    offsets: tuple[int, ...]
    n_rows: int
    lm_index: tuple[int, ...]
    row_degree: tuple[int, ...]
    row_order: tuple[int, ...]
    row_shared: tuple[int, ...]
    n_shared: int

    @property
    def dim(self) -> int:
        """``(l_max + 1)**2``, the number of rows of the l-major layout."""
        return (self.l_max + 1) ** 2


@functools.lru_cache(maxsize=None)
def _layout(l_max: int, m_max: int) -> SO2Layout:
    m_sizes, offsets, lm, deg, order, shared = [], [], [], [], [], []
    row, shared_base = 0, 0
    for m in range(m_max + 1):
        n = l_max - m + 1
        m_sizes.append(n)
        offsets.append(row)
        signs = (1,) if m == 0 else (1, -1)
        for s in signs:
            for i, l in enumerate(range(m, l_max + 1)):
                lm.append(l * l + l + s * m)
                deg.append(l)
                order.append(s * m)
                shared.append(shared_base + i)
        row += n * len(signs)
        shared_base += n
    return SO2Layout(
        l_max=l_max,
        m_max=m_max,
        m_sizes=tuple(m_sizes),
        offsets=tuple(offsets),
        n_rows=row,
        lm_index=tuple(lm),
        row_degree=tuple(deg),
        row_order=tuple(order),
        row_shared=tuple(shared),
        n_shared=shared_base,
    )


def so2_layout(l_max: int, m_max: int) -> SO2Layout:
    """The :class:`SO2Layout` for ``l_max >= 0`` and ``0 <= m_max <= l_max`` (cached, immutable)."""
    l_max = _check_int("l_max", l_max, 0)
    m_max = _check_int("m_max", m_max, 0)
    if m_max > l_max:
        raise ValueError(f"m_max must be <= l_max = {l_max}, got {m_max}")
    return _layout(l_max, m_max)


def edge_wigner(
    edge_vec: Tensor, layout: SO2Layout, *, roll_angle: Tensor | None = None
) -> Tensor:
    r"""Rows ``|m| <= m_max`` of the block-diagonal Wigner-D of each edge frame, in m-major order.

    :math:`W_e = P\,\big(\bigoplus_l D^l(R_e)\big)` with :math:`R_e\hat r_e = +\hat y`
    (:func:`~nnip_scaling.geometry.edge_frame`, optionally rolled by ``roll_angle`` about y) and
    :math:`P` the selection of the m-major rows. ``W_e @ x`` rotates l-major features into the edge
    frame (:func:`to_edge_frame`); ``W_e.T @ y`` rotates back (:func:`from_edge_frame`), which is
    exact for the kept rows because each :math:`D^l` is orthogonal.

    Computed with the polynomial Wigner-D recursion: value and gradient finite for every non-zero
    edge, including edges along :math:`\pm y`.

    Args:
        edge_vec: edge vectors :math:`r_{uv} = x_u - x_v`.
        layout: from :func:`so2_layout`.
        roll_angle: optional roll about the edge axis per edge (radians); the SO(2) convolution
            gives the same result for every roll.

    Shapes:
        edge_vec: ``[E, 3]``, roll_angle: ``[E]`` -> ``[E, K, (l_max+1)**2]``.
    """
    if not isinstance(layout, SO2Layout):
        raise TypeError(f"layout must be an SO2Layout, got {type(layout).__name__}")
    frame = edge_frame(edge_vec, roll_angle=roll_angle)
    full = wigner_D_block_diagonal(layout.l_max, frame)  # [E, dim, dim]
    rows = torch.tensor(layout.lm_index, dtype=torch.int64, device=edge_vec.device)
    return full.index_select(1, rows)


def to_edge_frame(x: Tensor, wigner: Tensor) -> Tensor:
    r"""Rotate l-major edge features into the edge frame: :math:`\tilde x_e = W_e x_e`.

    Shapes:
        x: ``[E, (l_max+1)**2, C]``, wigner: ``[E, K, (l_max+1)**2]`` -> ``[E, K, C]``.
    """
    return torch.bmm(wigner, x)


def from_edge_frame(y: Tensor, wigner: Tensor) -> Tensor:
    r"""Rotate m-major edge-frame features back: :math:`x_e = W_e^\top y_e` (orthogonality of D).

    Shapes:
        y: ``[E, K, C]``, wigner: ``[E, K, (l_max+1)**2]`` -> ``[E, (l_max+1)**2, C]``.
    """
    return torch.bmm(wigner.transpose(1, 2), y)


def so2_linear_m0(x0: Tensor, weight_m0: Tensor, bias_m0: Tensor | None) -> Tensor:
    r"""The ``m = 0`` part of :func:`so2_linear`: :math:`y_0 = \tilde h_0 W_0 + b`.

    Shapes:
        ``x0 [E, n_0, C_in]`` -> ``[E, n_0, C_out]``.
    """
    n_edges, n0, c_in = x0.shape
    flat = x0.reshape(n_edges, n0 * c_in)
    y0 = flat @ weight_m0 if bias_m0 is None else torch.addmm(bias_m0, flat, weight_m0)
    return y0.view(n_edges, n0, weight_m0.shape[1] // n0)


def order_blocks(x: Tensor, layout: SO2Layout) -> tuple[Tensor, ...]:
    r"""Views of m-major features, one per order: the ``m = 0`` rows, then for each ``m >= 1`` its
    ``+m`` and ``-m`` rows together (they are adjacent in the m-major layout).

    Made by ``split`` (its backward is one concatenation; slicing would zero-fill a full-size gradient
    per block).

    Shapes:
        ``x [E, K, C]`` -> ``([E, n_0, C], [E, 2 n_1, C], ..., [E, 2 n_{m_max}, C])``.
    """
    sizes = [n if m == 0 else 2 * n for m, n in enumerate(layout.m_sizes)]
    return tuple(x.split(sizes, dim=1))


def so2_real_weight(weight_m: Tensor) -> Tensor:
    r"""The order-``m`` map of eq. 22 as one real matrix: :math:`[W^{(1)}_m | W^{(2)}_m] \mapsto
    \begin{pmatrix} W^{(1)}_m & W^{(2)}_m \\ -W^{(2)}_m & W^{(1)}_m \end{pmatrix}`,

    so that :math:`[\tilde h_{+m} \,|\, \tilde h_{-m}]\,W = [y_{+m} \,|\, y_{-m}]` (the real form of
    the complex product :math:`(h_+ + i h_-)(W^{(1)} + i W^{(2)})`): one matrix product per order, with
    no additions of partial products afterwards.

    Shapes:
        ``[n C_in, 2 n C_out] -> [2 n C_in, 2 n C_out]``.
    """
    w1, w2 = weight_m.chunk(2, dim=1)
    return torch.cat((weight_m, torch.cat((-w2, w1), dim=1)), dim=0)


def so2_linear_order(x_m: Tensor, weight_m: Tensor) -> Tensor:
    r"""The order-``m >= 1`` part of :func:`so2_linear` on the joint ``\pm m`` block of
    :func:`order_blocks`, as one matrix product with :func:`so2_real_weight`.

    Shapes:
        ``x_m [E, 2n, C_in]``, ``weight_m [n C_in, 2 n C_out]`` -> ``[E, 2n, C_out]``.
    """
    n_edges, rows, c_in = x_m.shape
    y = x_m.reshape(n_edges, rows * c_in) @ so2_real_weight(weight_m)
    return y.view(n_edges, rows, weight_m.shape[1] // rows)


def so2_linear(
    x: Tensor,
    weight_m0: Tensor,
    bias_m0: Tensor | None,
    weights_m: Sequence[Tensor],
    layout: SO2Layout,
    *,
    modulation: Tensor | None = None,
) -> Tensor:
    r"""The SO(2) linear map of eq. 21-22 on m-major edge-frame features.

    .. math::

        y_0 = (\rho_0 \odot \tilde h_0) W_0 + b,\qquad
        y_{+m} = (\rho_m \odot \tilde h_{+m}) W^{(1)}_m - (\rho_m \odot \tilde h_{-m}) W^{(2)}_m,\qquad
        y_{-m} = (\rho_m \odot \tilde h_{+m}) W^{(2)}_m + (\rho_m \odot \tilde h_{-m}) W^{(1)}_m ,

    where :math:`\tilde h_{\pm m}` flattens the ``(l, channel)`` coefficients of order :math:`\pm m`
    (degree-major, ``l = m..l_max``) and :math:`\rho` is an optional per-edge modulation, one factor
    per ``(l, |m|, channel)`` shared by ``+m`` and ``-m`` (so it commutes with the roll about the edge
    axis; :math:`\rho = 1` without it). The bias acts on the ``m = 0`` outputs of every degree: in the
    edge frame these are the directions :math:`Y_l(\hat r_{uv})` once rotated back, so it is
    equivariant (a tensor product with a constant scalar input). Built from :func:`order_blocks`,
    :func:`so2_linear_m0` and :func:`so2_linear_order` (each order ``m >= 1`` one matrix product with
    :func:`so2_real_weight`), which a caller can use directly to chain several maps without
    re-assembling the rows in between.

    Args:
        x: m-major features.
        weight_m0: :math:`W_0`, ``[(l_max+1) C_in, (l_max+1) C_out]``.
        bias_m0: ``[(l_max+1) C_out]`` or ``None``.
        weights_m: for ``m = 1..m_max``: :math:`[W^{(1)}_m \,|\, W^{(2)}_m]` concatenated along the
            output axis, ``[n_m C_in, 2 n_m C_out]``, ``n_m = l_max - m + 1``.
        layout: from :func:`so2_layout`.
        modulation: :math:`\rho`, ``[E, n_shared, C_in]`` ordered like ``layout.row_shared``
            (``m = 0`` degrees ``0..l_max``, then ``m = 1`` degrees ``1..l_max``, ...), or ``None``.

    Shapes:
        x: ``[E, K, C_in]`` -> ``[E, K, C_out]``.
    """
    blocks = order_blocks(x, layout)
    if modulation is not None:  # one factor per (l, |m|, channel): the same on the +m and -m rows
        rho = modulation.split(list(layout.m_sizes), dim=1)
        blocks = (blocks[0] * rho[0],) + tuple(
            (b.unflatten(1, (2, n)) * r[:, None]).flatten(1, 2)
            for b, r, n in zip(blocks[1:], rho[1:], layout.m_sizes[1:])
        )
    y0 = so2_linear_m0(blocks[0], weight_m0, bias_m0)
    return torch.cat([y0, *(so2_linear_order(b, w) for b, w in zip(blocks[1:], weights_m))], dim=1)


def tensor_product_paths(l_max: int, l_sh_max: int) -> tuple[tuple[int, int, int], ...]:
    r"""All paths :math:`(l_1, l_2, l_3)` of eq. 14 with :math:`l_1, l_3 \le l_{max}`,
    :math:`l_2 \le l_{sh,max}` and :math:`|l_1 - l_3| \le l_2 \le l_1 + l_3`, ordered
    lexicographically by ``(l1, l2, l3)``."""
    l_max = _check_int("l_max", l_max, 0)
    l_sh_max = _check_int("l_sh_max", l_sh_max, 0)
    return tuple(
        (l1, l2, l3)
        for l1 in range(l_max + 1)
        for l2 in range(l_sh_max + 1)
        for l3 in range(l_max + 1)
        if abs(l1 - l3) <= l2 <= l1 + l3
    )


def so2_weights_from_tensor_product(
    weights: Tensor,
    paths: Sequence[tuple[int, int, int]],
    layout: SO2Layout,
) -> tuple[Tensor, list[Tensor]]:
    r"""SO(2) weights equivalent to a Clebsch-Gordan tensor-product convolution (eq. 18-19).

    For path weights :math:`w_{l_1 l_2 l_3} \in \mathbb R^{C_{in}\times C_{out}}` of

    .. math::

        m_{l_3, m_3}^{w} = \sum_{l_1 l_2} \sum_{u} w_{l_1 l_2 l_3}^{uw}
            \sum_{m_1 m_2} C^{l_1 l_2 l_3}_{m_1 m_2 m_3}\, h^{u}_{l_1 m_1}\, Y_{l_2 m_2}(\hat r),

    with :math:`C` = :func:`~nnip_scaling.geometry.clebsch_gordan.wigner_3j` (equal to e3nn >= 0.5's
    ``o3.wigner_3j``) and :math:`Y` in ``component`` normalisation
    (:math:`Y_{l_2}^{0}(\hat y) = \sqrt{2l_2+1}`), the edge-frame kernel is

    .. math::

        K^{uw}_{(l_3 m_3),(l_1 m_1)} = \sum_{l_2} \sqrt{2l_2+1}\;
            w^{uw}_{l_1 l_2 l_3}\, C^{l_1 l_2 l_3}_{m_1\,0\,m_3},

    which vanishes unless :math:`|m_1| = |m_3|` and has the 2x2 form of eq. 22:
    :math:`W^{(1)}_m = K_{(\cdot,+m),(\cdot,+m)} = K_{(\cdot,-m),(\cdot,-m)}` (eq. 18) and
    :math:`W^{(2)}_m = K_{(\cdot,-m),(\cdot,+m)} = -K_{(\cdot,+m),(\cdot,-m)}` (eq. 19). Both
    identities are checked here (a ``RuntimeError`` would mean a convention mismatch). With
    ``layout.m_max == layout.l_max`` the SO(2) map with these weights equals the tensor product;
    with a smaller ``m_max`` it equals its restriction to ``|m| <= m_max`` in the edge frame.

    Args:
        weights: path weights, ``[n_paths, C_in, C_out]`` (float64 recommended).
        paths: ``(l1, l2, l3)`` per path (e.g. :func:`tensor_product_paths`), ``l1, l3 <= l_max``.
        layout: target :func:`so2_layout`.

    Returns:
        ``(weight_m0, weights_m)`` in the format of :func:`so2_linear` (no bias).

    Shapes:
        weights: ``[n_paths, C_in, C_out]`` -> ``[(l_max+1) C_in, (l_max+1) C_out]`` and, per
        ``m = 1..m_max``, ``[n_m C_in, 2 n_m C_out]``.
    """
    from nnip_scaling.geometry.clebsch_gordan import wigner_3j

    if not isinstance(weights, Tensor) or weights.dim() != 3:
        raise ValueError("weights must be a tensor [n_paths, C_in, C_out]")
    paths = [tuple(int(v) for v in p) for p in paths]
    if len(paths) != weights.shape[0]:
        raise ValueError(f"weights has {weights.shape[0]} paths but {len(paths)} paths were given")
    l_max = layout.l_max
    for l1, l2, l3 in paths:
        if not (l1 <= l_max and l3 <= l_max and abs(l1 - l3) <= l2 <= l1 + l3):
            raise ValueError(f"path {(l1, l2, l3)} is not a valid path for l_max = {l_max}")
    c_in, c_out = weights.shape[1], weights.shape[2]
    dt, dev = weights.dtype, weights.device
    dim = layout.dim
    # full edge-frame kernel K[(l3 m3), (l1 m1), u, w]
    kernel = torch.zeros(dim, dim, c_in, c_out, dtype=dt, device=dev)
    for p, (l1, l2, l3) in enumerate(paths):
        cg = wigner_3j(l1, l2, l3, dtype=dt, device=dev)[:, l2, :]  # [2l1+1, 2l3+1], m2 = 0
        block = math.sqrt(2 * l2 + 1) * torch.einsum("ac,uw->cauw", cg, weights[p])
        kernel[l3 * l3 : (l3 + 1) ** 2, l1 * l1 : (l1 + 1) ** 2] += block

    def lm(l: int, m: int) -> int:
        return l * l + l + m

    def sub(m_out: int, m_in: int, m: int) -> Tensor:
        ls = range(m, l_max + 1)
        rows = torch.tensor([lm(l, m_out) for l in ls], device=dev)
        cols = torch.tensor([lm(l, m_in) for l in ls], device=dev)
        k = kernel.index_select(0, rows).index_select(1, cols)  # [n(l3), n(l1), u, w]
        return k.permute(1, 2, 0, 3).reshape(len(ls) * c_in, len(ls) * c_out)

    scale = float(kernel.abs().max()) if kernel.numel() else 0.0
    tol = 1e-10 * max(scale, 1.0) if dt == torch.float64 else 1e-5 * max(scale, 1.0)
    weight_m0 = sub(0, 0, 0)
    weights_m = []
    for m in range(1, layout.m_max + 1):
        w1, w1b = sub(m, m, m), sub(-m, -m, m)
        w2, w2b = sub(-m, m, m), -sub(m, -m, m)
        if (w1 - w1b).abs().max() > tol or (w2 - w2b).abs().max() > tol:
            raise RuntimeError(f"Clebsch-Gordan kernel for m = {m} is not of SO(2) form (eq. 22)")
        weights_m.append(torch.cat((w1, w2), dim=1))
    return weight_m0, weights_m
