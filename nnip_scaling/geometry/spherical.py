r"""Spherical harmonics, Wigner-D matrices and edge frames (pure functions).

Conventions (e3nn's; see docs/geometry.md, "Geometry conventions"):

* Real spherical harmonics with ``component`` normalisation, :math:`\|Y^l(\hat x)\|^2 = 2l+1`,
  **y is the polar axis**. The features of all degrees are concatenated, degree ``l`` occupying
  the slice ``l**2 : (l+1)**2``, ordered :math:`m = -l, \dots, l`; the :math:`m = 0` component is
  the one symmetric about y. For ``l = 1`` the order is :math:`\sqrt3\,(x, y, z)`, so
  :math:`D^1(R) = R` exactly.
* :math:`D^l(R)` is the real Wigner-D matrix of e3nn,
  :math:`Y^l(R x) = D^l(R)\,Y^l(x)`, :math:`D^l(R_1R_2) = D^l(R_1)D^l(R_2)`, :math:`D^l` orthogonal.
* ``edge_frame`` returns rotations taking each edge direction onto :math:`+\hat y`.

Two methods compute :math:`D^l(R)` from a rotation matrix:

``"polynomial"`` (default)
    the recursion :math:`D^0 = 1`, :math:`D^1 = R`,

    .. math::

        D^l(R) = C_l^\top \big(D^{l-1}(R) \otimes R\big)\, C_l ,

    where :math:`C_l = \sqrt{2l+1}\; W_3j(l-1, 1, l)` reshaped to ``[3(2l-1), 2l+1]`` has orthonormal
    columns (Schur's lemma) spanning the degree-``l`` subspace of :math:`l-1 \otimes 1`. This is the
    identity :math:`C D^l = (D^{l-1}\otimes D^1)\, C` that defines the Wigner 3j symbols, so it is
    exact. :math:`D^l` is a homogeneous polynomial of degree ``l`` in the entries of ``R``: value and
    gradient are finite for every matrix (no Euler angles, no atan2 singularity at the poles). For an
    improper orthogonal ``R`` it gives :math:`(-1)^l D^l(-R)`, the representation with the natural
    parity of :math:`Y^l` (e3nn's ``Irrep(l, (-1)**l)``), so :math:`Y^l(Rx) = D^l(R) Y^l(x)` holds on
    all of O(3).

``"euler"``
    e3nn's YXY Euler angles :math:`R = R_y(\alpha) R_x(\beta) R_y(\gamma)` and the J-matrix formula

    .. math::

        D^l(R) = X^l(\alpha)\, J^l\, X^l(\beta)\, J^l\, X^l(\gamma),

    with :math:`X^l(\theta) = D^l(R_y(\theta))` (cos/sin of :math:`m\theta` on the diagonal and
    anti-diagonal, applied elementwise) and the constant involution :math:`J^l = D^l(P)`,
    :math:`P` the rotation by :math:`\pi` about :math:`(\hat x + \hat y)/\sqrt2`
    (:math:`P R_y(\beta) P = R_x(\beta)`). Fewer FLOPs, but the angles come from ``atan2``:
    the gradient is **not finite** for rotations with :math:`R\hat y = \pm\hat y` (e.g. the
    identity, or any edge frame of an edge along :math:`\pm y`). Improper ``R`` are handled through
    :math:`\det R`, giving the same O(3) extension as the polynomial method.

Measured in ``benchmarks/bench_wigner.py``; the default is the fastest method with finite gradients.
Constant matrices are computed once per ``l`` by ``functools.lru_cache`` on private pure functions
(CPU float64), then moved to the input's dtype/device; nothing mutable is exposed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

import torch

from nnip_scaling.geometry._checks import check_float_tensor, check_int, check_last_dims
from nnip_scaling.geometry._e3nn import e3nn_o3
from nnip_scaling.geometry.clebsch_gordan import wigner_3j

__all__ = [
    "spherical_harmonics",
    "wigner_D",
    "wigner_D_blocks",
    "wigner_D_block_diagonal",
    "edge_frame",
]

WignerMethod = Literal["polynomial", "euler"]
_METHODS = ("polynomial", "euler")


# ----------------------------------------------------------------------------------------------
# spherical harmonics
# ----------------------------------------------------------------------------------------------
def spherical_harmonics(l_max: int, vec: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    r"""Real spherical harmonics of degrees ``0..l_max``, e3nn convention (y polar, ``component``).

    .. math::

        Y(\mathbf r) = \big[Y^0, Y^1, \dots, Y^{l_{max}}\big],\qquad
        Y^l(R\,\mathbf r) = D^l(R)\,Y^l(\mathbf r),\qquad \|Y^l(\hat{\mathbf r})\|^2 = 2l+1 .

    Component order: degree ``l`` occupies ``[l**2, (l+1)**2)``, components ``m = -l..l``.
    ``l = 0``: ``1``; ``l = 1``: :math:`\sqrt3\,(x, y, z)`; ``l = 2``:
    :math:`\sqrt{15}\,xz,\ \sqrt{15}\,xy,\ \sqrt5\,(y^2 - (x^2+z^2)/2),\ \sqrt{15}\,yz,\
    \tfrac{\sqrt{15}}2 (z^2 - x^2)`; in general the ``m = 0`` component is the zonal (about y)
    polynomial and ``m``, ``-m`` are its cos/sin partners in the azimuth measured in the z-x plane.
    Computed by :func:`e3nn.o3.spherical_harmonics` (polynomials: finite gradients everywhere on
    the sphere, including :math:`\pm y`).

    Args:
        l_max: maximum degree (>= 0; e3nn supports up to 11).
        vec: vectors (e.g. ``edge_vec``).
        normalize: project ``vec`` onto the unit sphere first (e3nn maps a zero vector to zeros
            in ``l >= 1``). With ``False`` the harmonics are the homogeneous polynomials
            :math:`|\mathbf r|^l Y^l(\hat{\mathbf r})`.

    Shapes:
        vec: ``[..., 3]`` -> ``[..., (l_max+1)**2]``.
    """
    o3 = e3nn_o3()

    l_max = check_int("l_max", l_max, minimum=0)
    check_float_tensor("vec", vec)
    check_last_dims("vec", vec, (3,))
    return o3.spherical_harmonics(
        list(range(l_max + 1)), vec, normalize=bool(normalize), normalization="component"
    )


# ----------------------------------------------------------------------------------------------
# cached constants (private, pure functions of l; CPU float64)
# ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _cg_lift_cached(l: int) -> torch.Tensor:
    r""":math:`C_l = \sqrt{2l+1}\,W_3j(l-1, 1, l)`, shape ``[2l-1, 3, 2l+1]``, CPU float64, l >= 2."""
    c = wigner_3j(l - 1, 1, l, dtype=torch.float64, device="cpu") * math.sqrt(2 * l + 1)
    c = c.contiguous()
    c.requires_grad_(False)
    return c


@functools.lru_cache(maxsize=None)
def _y_generator_antidiag_cached(l: int) -> torch.Tensor:
    r"""Signed frequencies ``g_i = l - i`` with :math:`X^l(\theta)_{i, 2l-i} = \sin(g_i\theta)` (``[2l+1]``).

    On each invariant plane ``{m, -m}`` of the e3nn basis, a rotation about y by :math:`\theta`
    acts as a 2x2 rotation of frequency :math:`|m|`; row ``i`` (order :math:`m = i - l`) carries
    :math:`\sin((l - i)\theta)` on the anti-diagonal (the generator of e3nn >= 0.5,
    ``o3.so3_generators(l)[1]``, has these integers there; tested).
    """
    return torch.arange(l, -l - 1, -1, dtype=torch.float64)


@functools.lru_cache(maxsize=None)
def _j_matrix_cached(l: int) -> torch.Tensor:
    r""":math:`J^l = D^l(P)`, :math:`P` = rotation by pi about (x+y)/sqrt2; CPU float64 ``[2l+1, 2l+1]``."""
    p = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]], dtype=torch.float64)
    return _wigner_polynomial(l, p[None])[l][0].contiguous()


#: Degrees with a compile-time constant getter (``_constant_getters``); larger ones are computed in the graph.
_MAX_CONSTANT_L = 24


def _constant_getters(cached: Callable[[int], torch.Tensor], prefix: str) -> dict[int, Callable[[], torch.Tensor]]:
    """One argument-free getter per degree, each marked ``assume_constant_result`` under its own name.

    ``torch.compile`` embeds the result of such a function as a constant named after the function;
    one function called with several degrees would give several constants of the same name, which
    inductor rejects (torch 2.13: "source ConstantSource(...) already in seen_sources").
    """
    getters = {}
    for l in range(_MAX_CONSTANT_L + 1):
        def getter(l: int = l) -> torch.Tensor:
            return cached(l)

        name = f"{prefix}_l{l}"
        getter.__name__ = getter.__qualname__ = name
        code = getter.__code__  # dynamo names the constant after the code object
        getter.__code__ = code.replace(co_name=name, **({"co_qualname": name} if hasattr(code, "co_qualname") else {}))
        getters[l] = torch.compiler.assume_constant_result(getter)
    return getters


_CG_LIFT = _constant_getters(_cg_lift_cached, "_cg_lift")
_Y_GENERATOR_ANTIDIAG = _constant_getters(_y_generator_antidiag_cached, "_y_generator_antidiag")
_J_MATRIX = _constant_getters(_j_matrix_cached, "_j_matrix")


def _cg_lift(l: int) -> torch.Tensor:
    """:func:`_cg_lift_cached`, a compile-time constant under ``torch.compile``."""
    return _CG_LIFT[l]() if l in _CG_LIFT else _cg_lift_cached(l)


def _y_generator_antidiag(l: int) -> torch.Tensor:
    """:func:`_y_generator_antidiag_cached`, a compile-time constant under ``torch.compile``."""
    return _Y_GENERATOR_ANTIDIAG[l]() if l in _Y_GENERATOR_ANTIDIAG else _y_generator_antidiag_cached(l)


def _j_matrix(l: int) -> torch.Tensor:
    """:func:`_j_matrix_cached`, a compile-time constant under ``torch.compile``."""
    return _J_MATRIX[l]() if l in _J_MATRIX else _j_matrix_cached(l)


def _const(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.to(dtype=like.dtype, device=like.device)


# ----------------------------------------------------------------------------------------------
# Wigner D: polynomial recursion
# ----------------------------------------------------------------------------------------------
def _wigner_polynomial(l_max: int, r: torch.Tensor) -> list[torch.Tensor]:
    """Per-l blocks ``[B, 2l+1, 2l+1]`` for ``l = 0..l_max`` from ``r`` ``[B, 3, 3]``."""
    b = r.shape[0]
    out = [torch.ones(b, 1, 1, dtype=r.dtype, device=r.device)]
    if l_max == 0:
        return out
    out.append(r.clone())  # D^1(R) = R (a copy: outputs never alias the input)
    prev = r
    for l in range(2, l_max + 1):
        c = _const(_cg_lift(l), r)  # [a, 3, k], a = 2l-1, k = 2l+1
        a, k = 2 * l - 1, 2 * l + 1
        # T[z, a, b', n] = sum_a' D^{l-1}[z, a, a'] C[a', b', n]            (one GEMM)
        t = (prev.reshape(b * a, a) @ c.reshape(a, 3 * k)).reshape(b * a, 3, k)
        # U[z, a, b, n] = sum_b' R[z, b, b'] T[z, a, b', n]                  (batched 3x3 GEMMs)
        r_rep = r[:, None].expand(b, a, 3, 3).reshape(b * a, 3, 3)
        u = torch.bmm(r_rep, t).reshape(b, 3 * a, k)
        # D^l[z, k, n] = sum_{a, b} C[a, b, k] U[z, a, b, n]                   (batched GEMM)
        d = torch.matmul(c.reshape(3 * a, k).T, u)
        out.append(d)
        prev = d
    return out


# ----------------------------------------------------------------------------------------------
# Wigner D: Euler angles + J matrix
# ----------------------------------------------------------------------------------------------
def _matrix_y(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack(
        [torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2
    )


def _matrix_x(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    o, z = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack(
        [torch.stack([o, z, z], -1), torch.stack([z, c, -s], -1), torch.stack([z, s, c], -1)], -2
    )


def _euler_yxy(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""YXY angles with :math:`R = R_y(\alpha)R_x(\beta)R_y(\gamma)` for proper ``r`` ``[B, 3, 3]``.

    :math:`R\hat y = (\sin\alpha\sin\beta, \cos\beta, \cos\alpha\sin\beta)`; :math:`\beta` via
    ``atan2`` (accurate at the poles, unlike ``acos``); :math:`\gamma` from the residual rotation
    :math:`R_x(\beta)^\top R_y(\alpha)^\top R = R_y(\gamma)` (robust near the poles).
    """
    v = r[..., :, 1]
    alpha = torch.atan2(v[..., 0], v[..., 2])
    beta = torch.atan2(torch.sqrt(v[..., 0] ** 2 + v[..., 2] ** 2), v[..., 1])
    res = (_matrix_y(alpha) @ _matrix_x(beta)).transpose(-1, -2) @ r
    gamma = torch.atan2(res[..., 0, 2], res[..., 0, 0])
    return alpha, beta, gamma


def _wigner_euler(l_max: int, r: torch.Tensor) -> list[torch.Tensor]:
    b = r.shape[0]
    sign = torch.sign(torch.linalg.det(r))
    alpha, beta, gamma = _euler_yxy(r * sign[:, None, None])
    out = [torch.ones(b, 1, 1, dtype=r.dtype, device=r.device)]
    for l in range(1, l_max + 1):
        n = 2 * l + 1
        m = torch.arange(-l, l + 1, dtype=r.dtype, device=r.device)
        g = _const(_y_generator_antidiag(l), r)
        j = _const(_j_matrix(l), r)
        ca, sa = torch.cos(alpha[:, None] * m), torch.sin(alpha[:, None] * g)  # [B, n]
        cb, sb = torch.cos(beta[:, None] * m), torch.sin(beta[:, None] * g)
        cg, sg = torch.cos(gamma[:, None] * m), torch.sin(gamma[:, None] * g)
        # A = J X(beta): (M X)[i, j] = M[i, j] cos(m_j t) + M[i, 2l-j] sin(g_{2l-j} t)
        a_mat = j * cb[:, None, :] + j.flip(-1) * sb.flip(-1)[:, None, :]
        # K = A J  (one GEMM)
        k_mat = (a_mat.reshape(b * n, n) @ j).reshape(b, n, n)
        # K X(gamma)
        k_mat = k_mat * cg[:, None, :] + k_mat.flip(-1) * sg.flip(-1)[:, None, :]
        # X(alpha) K: (X M)[i, j] = cos(m_i t) M[i, j] + sin(g_i t) M[2l-i, j]
        d = ca[:, :, None] * k_mat + sa[:, :, None] * k_mat.flip(-2)
        if l % 2 == 1:
            d = d * sign[:, None, None]
        out.append(d)
    return out


# ----------------------------------------------------------------------------------------------
# public Wigner D
# ----------------------------------------------------------------------------------------------
def _check_rotations(name: str, r: torch.Tensor) -> None:
    check_float_tensor(name, r)
    check_last_dims(name, r, (3, 3))


def wigner_D_blocks(
    l_max: int, R: torch.Tensor, *, method: WignerMethod = "polynomial"
) -> list[torch.Tensor]:
    r"""Real Wigner-D matrices :math:`D^0(R), \dots, D^{l_{max}}(R)` (e3nn basis), one per degree.

    Satisfies :math:`Y^l(Rx) = D^l(R)Y^l(x)` (with :func:`spherical_harmonics`),
    :math:`D^l(R_1R_2) = D^l(R_1)D^l(R_2)`, :math:`D^l(R)^\top D^l(R) = I`, and agrees with
    ``e3nn.o3.Irrep(l, (-1)**l).D_from_matrix(R)`` (to ~1e-13 in float64). ``R`` should be
    orthogonal (proper or improper, see the module docstring); nothing is checked, to avoid a
    device synchronisation. Computing all degrees at once costs the same as the highest one alone.

    Args:
        l_max: maximum degree (>= 0).
        R: rotation matrices, any batch shape.
        method: ``"polynomial"`` (default; finite gradients for every R) or ``"euler"``
            (J-matrix formula; gradient not finite when :math:`R\hat y = \pm\hat y`).

    Shapes:
        R: ``[..., 3, 3]`` -> list of ``l_max + 1`` tensors ``[..., 2l+1, 2l+1]``.
    """
    l_max = check_int("l_max", l_max, minimum=0)
    _check_rotations("R", R)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    batch = R.shape[:-2]
    flat = R.reshape(-1, 3, 3)
    blocks = (_wigner_polynomial if method == "polynomial" else _wigner_euler)(l_max, flat)
    return [blk.reshape(*batch, 2 * l + 1, 2 * l + 1) for l, blk in enumerate(blocks)]


def wigner_D(l: int, R: torch.Tensor, *, method: WignerMethod = "polynomial") -> torch.Tensor:
    r"""Real Wigner-D matrix :math:`D^l(R)` of one degree (e3nn basis).

    See :func:`wigner_D_blocks` for the identities and methods (the polynomial method builds the
    lower degrees on the way; call :func:`wigner_D_blocks` when several degrees are needed).

    Shapes:
        R: ``[..., 3, 3]`` -> ``[..., 2l+1, 2l+1]``.
    """
    l = check_int("l", l, minimum=0)
    return wigner_D_blocks(l, R, method=method)[l]


def wigner_D_block_diagonal(
    l_max: int, R: torch.Tensor, *, method: WignerMethod = "polynomial"
) -> torch.Tensor:
    r"""Block-diagonal :math:`\bigoplus_{l=0}^{l_{max}} D^l(R)`, acting on ``[(l_max+1)**2]`` features.

    Block ``l`` sits at rows/columns ``l**2 : (l+1)**2``, matching :func:`spherical_harmonics` and
    the spherical feature layout ``[n_atoms, (l_max+1)**2, channels]``:
    ``Y(R x) = D(R) @ Y(x)``.

    Shapes:
        R: ``[..., 3, 3]`` -> ``[..., (l_max+1)**2, (l_max+1)**2]``.
    """
    blocks = wigner_D_blocks(l_max, R, method=method)
    dim = (l_max + 1) ** 2
    out = R.new_zeros(*R.shape[:-2], dim, dim)
    for l, blk in enumerate(blocks):
        out[..., l * l : (l + 1) ** 2, l * l : (l + 1) ** 2] = blk
    return out


# ----------------------------------------------------------------------------------------------
# edge frames
# ----------------------------------------------------------------------------------------------
def edge_frame(edge_vec: torch.Tensor, *, roll_angle: torch.Tensor | None = None) -> torch.Tensor:
    r"""Rotations :math:`R_e` with :math:`R_e\,\hat e = +\hat y` for every edge.

    With :math:`\hat u = e/|e|` the rows of :math:`R_e` are :math:`(\hat u \times \hat w,\ \hat u,\
    \hat w)` (a right-handed orthonormal frame, :math:`\det R_e = +1`), where :math:`\hat w` is the
    Gram-Schmidt projection of a reference axis :math:`a` orthogonal to :math:`\hat u`:

    .. math::

        \hat w = \frac{a - (a\cdot\hat u)\hat u}{|a - (a\cdot\hat u)\hat u|},\qquad
        a = \begin{cases} \hat z & |\hat u_z| < 0.9\\ \hat x & \text{otherwise.}\end{cases}

    **Roll convention.** The frame is fixed up to a rotation about y; with the rule above the
    frame's z row lies in the plane spanned by :math:`\hat u` and :math:`a`: an edge along
    :math:`+y` gets the identity, an edge along :math:`-y` gets :math:`\mathrm{diag}(-1,-1,1)`
    (rotation by pi about z). ``roll_angle`` :math:`\phi` returns :math:`R_y(\phi)R_e` instead, still
    mapping the edge onto +y (used for random-roll augmentation; an SO(2)-equivariant block must
    give the same result for every roll).

    **Smoothness.** The reference is chosen by ``torch.where`` before normalising, so value and
    gradient are finite for every non-zero edge, in particular exactly along and near :math:`\pm y`
    (gradcheck-tested in float64). The frame jumps (by a roll about y) where :math:`|\hat u_z|`
    crosses 0.9; quantities that are invariant under the roll (everything a correct SO(2) block
    computes) are continuous there.

    **Zero-length edges** give NaN: they are not checked, which would need a device
    synchronisation; ``AtomicGraph``/``radius_graph`` already reject coincident atoms.

    Args:
        edge_vec: edge vectors (any non-zero length).
        roll_angle: optional roll about +y in radians, broadcastable to ``edge_vec.shape[:-1]``.

    Shapes:
        edge_vec: ``[..., 3]`` -> ``[..., 3, 3]``; roll_angle: ``[...]`` or scalar.
    """
    check_float_tensor("edge_vec", edge_vec)
    check_last_dims("edge_vec", edge_vec, (3,))
    u = edge_vec / torch.linalg.vector_norm(edge_vec, dim=-1, keepdim=True)
    ez = torch.tensor([0.0, 0.0, 1.0], dtype=u.dtype, device=u.device)
    ex = torch.tensor([1.0, 0.0, 0.0], dtype=u.dtype, device=u.device)
    use_z = (u[..., 2].abs() < 0.9).unsqueeze(-1)
    ref = torch.where(use_z, ez, ex)
    w = ref - (ref * u).sum(-1, keepdim=True) * u
    w = w / torch.linalg.vector_norm(w, dim=-1, keepdim=True)
    v = torch.linalg.cross(u, w, dim=-1)
    frame = torch.stack([v, u, w], dim=-2)
    if roll_angle is not None:
        if not isinstance(roll_angle, torch.Tensor):
            raise TypeError(f"roll_angle must be a torch.Tensor or None, got {type(roll_angle).__name__}")
        try:
            angle = torch.broadcast_to(roll_angle.to(dtype=u.dtype), u.shape[:-1])
        except RuntimeError as exc:
            raise ValueError(
                f"roll_angle of shape {list(roll_angle.shape)} does not broadcast to the edge "
                f"batch shape {list(u.shape[:-1])}"
            ) from exc
        frame = _matrix_y(angle) @ frame
    return frame
