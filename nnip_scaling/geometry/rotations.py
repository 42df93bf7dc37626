r"""Rotations and reflections of 3-space (pure functions).

All matrices act on column vectors, :math:`x \mapsto Rx`; a batch of row vectors ``pos [n, 3]`` is
rotated as ``pos @ R.T``. Rotations about an axis are right-handed (counter-clockwise looking down
the axis towards the origin), matching ``e3nn.o3.matrix_x/y/z``.

Randomness only through an explicit ``torch.Generator``. Random matrices are drawn in float64 on
the generator's device and then cast, so a given seed yields the same rotations (up to rounding)
in every dtype and on every target device.
"""

from __future__ import annotations

import torch

from nnip_scaling.geometry._checks import check_float_tensor, check_int, check_last_dims

__all__ = [
    "random_rotation",
    "random_reflection",
    "reflection",
    "rotation_about_axis",
    "rotation_90",
]


def _check_generator(generator) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator (randomness is explicit: "
            f"torch.Generator().manual_seed(0)), got {type(generator).__name__}"
        )
    return generator


def _haar_orthogonal(n: int | None, generator: torch.Generator) -> torch.Tensor:
    """Haar-random O(3) matrices in float64 on the generator's device, ``[m, 3, 3]``."""
    m = 1 if n is None else n
    g = torch.randn(m, 3, 3, generator=generator, dtype=torch.float64, device=generator.device)
    q, r = torch.linalg.qr(g)
    # Sign fix (Mezzadri 2007): makes the QR factorisation unique, so q is Haar on O(3).
    d = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
    d = torch.where(d == 0, torch.ones_like(d), d)
    return q * d[:, None, :]


def random_rotation(
    n: int | None = None,
    *,
    generator: torch.Generator,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Haar-random (uniform) rotation matrices in SO(3).

    QR of a 3x3 standard Gaussian matrix with the sign fix :math:`Q \leftarrow Q\,\mathrm{sign}
    (\mathrm{diag}\,R)` is Haar on O(3); :math:`Q \leftarrow \det(Q)\,Q` maps it onto SO(3) (the
    map is measure-preserving since :math:`-I` is central), so :math:`\det = +1` exactly in sign.

    Args:
        n: number of rotations; ``None`` returns a single matrix.
        generator: the random source (required).
        dtype: result dtype (default: ``torch.get_default_dtype()``).
        device: result device (default: the generator's device).

    Shapes:
        ``n = None`` -> ``[3, 3]``; ``n`` -> ``[n, 3, 3]``.
    """
    _check_generator(generator)
    if n is not None:
        n = check_int("n", n, minimum=0)
    q = _haar_orthogonal(n, generator)
    q = q * torch.linalg.det(q)[:, None, None]
    q = q.to(dtype=dtype or torch.get_default_dtype(), device=device or generator.device)
    return q[0] if n is None else q


def random_reflection(
    n: int | None = None,
    *,
    generator: torch.Generator,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Haar-random improper orthogonal matrices (:math:`\det = -1`): :math:`-Q`, :math:`Q` Haar on SO(3).

    Uniform on the coset :math:`O(3)\setminus SO(3)` (rotoreflections; pure mirror planes are
    :func:`reflection`). Same random stream as :func:`random_rotation` for the same generator state.

    Shapes:
        ``n = None`` -> ``[3, 3]``; ``n`` -> ``[n, 3, 3]``.
    """
    return -random_rotation(n, generator=generator, dtype=dtype, device=device)


def reflection(normal: torch.Tensor) -> torch.Tensor:
    r"""Householder mirror through the plane with the given normal, :math:`I - 2\hat n\hat n^\top`.

    Symmetric, orthogonal, :math:`\det = -1`, involutive. ``normal`` need not be unit length
    (zero normals give NaN; not checked, to avoid a device synchronisation).

    Shapes:
        normal: ``[..., 3]`` -> ``[..., 3, 3]``.
    """
    check_float_tensor("normal", normal)
    check_last_dims("normal", normal, (3,))
    n = normal / torch.linalg.vector_norm(normal, dim=-1, keepdim=True)
    eye = torch.eye(3, dtype=n.dtype, device=n.device)
    return eye - 2.0 * n.unsqueeze(-1) * n.unsqueeze(-2)


def rotation_about_axis(axis: torch.Tensor, angle: torch.Tensor | float) -> torch.Tensor:
    r"""Right-handed rotation by ``angle`` (radians) about ``axis`` (Rodrigues' formula).

    .. math::

        R = I + \sin\theta\,K + (1 - \cos\theta)\,K^2,\qquad K = [\hat a]_\times .

    ``axis`` need not be unit length. ``axis`` and ``angle`` broadcast against each other.

    Shapes:
        axis: ``[..., 3]``, angle: ``[...]`` (or a float) -> ``[..., 3, 3]``.
    """
    check_float_tensor("axis", axis)
    check_last_dims("axis", axis, (3,))
    if not isinstance(angle, torch.Tensor):
        angle = torch.tensor(float(angle), dtype=axis.dtype, device=axis.device)
    check_float_tensor("angle", angle)
    a = axis / torch.linalg.vector_norm(axis, dim=-1, keepdim=True)
    batch = torch.broadcast_shapes(a.shape[:-1], angle.shape)
    a = a.expand(*batch, 3)
    angle = angle.to(a.dtype).expand(batch)
    x, y, z = a.unbind(-1)
    o = torch.zeros_like(x)
    k = torch.stack(
        [torch.stack([o, -z, y], -1), torch.stack([z, o, -x], -1), torch.stack([-y, x, o], -1)], -2
    )
    s = torch.sin(angle)[..., None, None]
    c = torch.cos(angle)[..., None, None]
    eye = torch.eye(3, dtype=a.dtype, device=a.device)
    return eye + s * k + (1.0 - c) * (k @ k)


_AXES = {"x": 0, "y": 1, "z": 2}


def rotation_90(
    axis: str | int,
    *,
    k: int = 1,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Exact right-handed rotation by ``k`` quarter turns about a coordinate axis.

    Entries are exactly 0 or ±1 (no rounding), useful for equivariance tests with exact
    permutations of coordinates. ``rotation_90("z") @ [1, 0, 0] = [0, 1, 0]``.

    Args:
        axis: ``"x"``, ``"y"``, ``"z"`` or 0, 1, 2.
        k: number of quarter turns (any int; negative turns clockwise).
        dtype, device: of the result (default dtype: ``torch.get_default_dtype()``).

    Shapes:
        -> ``[3, 3]``.
    """
    if isinstance(axis, str):
        if axis not in _AXES:
            raise ValueError(f"axis must be 'x', 'y', 'z' or 0, 1, 2, got {axis!r}")
        i = _AXES[axis]
    else:
        i = check_int("axis", axis, minimum=0)
        if i > 2:
            raise ValueError(f"axis must be 'x', 'y', 'z' or 0, 1, 2, got {axis!r}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][k % 4]
    j, l = (i + 1) % 3, (i + 2) % 3  # cyclic: rotation maps e_j -> c e_j + s e_l
    m = [[0.0] * 3 for _ in range(3)]
    m[i][i] = 1.0
    m[j][j], m[l][l] = float(c), float(c)
    m[l][j], m[j][l] = float(s), float(-s)
    return torch.tensor(m, dtype=dtype or torch.get_default_dtype(), device=device)
