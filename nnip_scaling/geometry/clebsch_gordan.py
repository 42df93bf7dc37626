r"""Real Wigner 3j symbols, computed here so that our constants do not depend on the e3nn version.

:func:`wigner_3j` returns the real-basis coupling tensor :math:`W_{3j}(l_1, l_2, l_3)` in e3nn's
basis (y polar axis, :math:`m = -l..l`) and e3nn's sign convention of versions >= 0.5: it equals
``e3nn.o3.wigner_3j(l1, l2, l3)`` of e3nn 0.5-0.6 to rounding (tested up to :math:`l = 6`).

Why not call e3nn: e3nn 0.4.4 (the version mace-torch pins) returns the same tensors up to an
overall sign, and the sign differs for 34 of the 175 triples with :math:`l \le 6` (for example
:math:`(1, 2, 2)`). A model whose constants came from e3nn would then compute a different function
with the same weights depending on which e3nn is installed, and a checkpoint would not carry over.

Construction (exact rational arithmetic up to one square root per entry):

1. the complex Clebsch-Gordan coefficients :math:`\langle l_1 m_1\, l_2 m_2 | l_3 m_3\rangle` by
   Racah's formula;
2. the change of basis from real to complex spherical harmonics of each degree,
   :math:`Q_l` with rows :math:`m` and columns the real components:
   :math:`Q_{m,|m|} = (-1)^m/\sqrt2,\ Q_{m,-|m|} = i(-1)^m/\sqrt2` for :math:`m > 0`,
   :math:`Q_{m,|m|} = 1/\sqrt2,\ Q_{m,-|m|} = -i/\sqrt2` for :math:`m < 0`, :math:`Q_{0,0} = 1`,
   all times :math:`(-i)^l` (which makes the result real);
3. :math:`W[a, b, c] = \sum Q_{l_1}[i, a]\, Q_{l_2}[k, b]\, \overline{Q_{l_3}[n, c]}\, C[i, k, n]`,
   normalised to unit Frobenius norm.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import torch

__all__ = ["wigner_3j"]


def _racah_sum(j1: int, j2: int, j3: int, m1: int, m2: int) -> Fraction:
    f = math.factorial
    total = Fraction(0)
    for k in range(j1 + j2 - j3 + 1):
        terms = (k, j1 + j2 - j3 - k, j1 - m1 - k, j2 + m2 - k, j3 - j2 + m1 + k, j3 - j1 - m2 + k)
        if min(terms) >= 0:
            total += Fraction((-1) ** k, math.prod(f(t) for t in terms))
    return total


def _clebsch_gordan_complex(j1: int, j2: int, j3: int) -> torch.Tensor:
    r""":math:`\langle j_1 m_1\, j_2 m_2 | j_3 m_3\rangle`, ``[2j1+1, 2j2+1, 2j3+1]`` float64."""
    f = math.factorial
    out = torch.zeros(2 * j1 + 1, 2 * j2 + 1, 2 * j3 + 1, dtype=torch.float64)
    norm = Fraction((2 * j3 + 1) * f(j3 + j1 - j2) * f(j3 - j1 + j2) * f(j1 + j2 - j3), f(j1 + j2 + j3 + 1))
    for m1 in range(-j1, j1 + 1):
        for m2 in range(-j2, j2 + 1):
            m3 = m1 + m2
            if abs(m3) > j3:
                continue
            s = _racah_sum(j1, j2, j3, m1, m2)
            if s == 0:
                continue
            g = norm * f(j3 + m3) * f(j3 - m3) * f(j1 - m1) * f(j1 + m1) * f(j2 - m2) * f(j2 + m2)
            out[j1 + m1, j2 + m2, j3 + m3] = float(s) * math.sqrt(g)
    return out


def _real_to_complex(l: int) -> torch.Tensor:
    """:math:`Q_l` of step 2 of the module docstring, ``[2l+1, 2l+1]`` complex128."""
    q = torch.zeros(2 * l + 1, 2 * l + 1, dtype=torch.complex128)
    h = 1.0 / math.sqrt(2.0)
    for m in range(1, l + 1):
        q[l - m, l + m] = h
        q[l - m, l - m] = -1j * h
        q[l + m, l + m] = (-1) ** m * h
        q[l + m, l - m] = 1j * (-1) ** m * h
    q[l, l] = 1.0
    return (-1j) ** l * q


@functools.lru_cache(maxsize=None)
def _wigner_3j_cpu(l1: int, l2: int, l3: int) -> torch.Tensor:
    c = _clebsch_gordan_complex(l1, l2, l3).to(torch.complex128)
    q1, q2, q3 = (_real_to_complex(l) for l in (l1, l2, l3))
    w = torch.einsum("ia,kb,nc,ikn->abc", q1, q2, q3.conj(), c)
    if float(w.imag.abs().max()) > 1e-10:  # pragma: no cover - the (-i)^l factors make it real
        raise RuntimeError(f"wigner_3j({l1}, {l2}, {l3}) is not real")
    w = w.real
    w = w / torch.linalg.vector_norm(w)
    w.requires_grad_(False)
    return w


def wigner_3j(
    l1: int,
    l2: int,
    l3: int,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Real Wigner 3j symbol :math:`W_{3j}(l_1, l_2, l_3)` (e3nn >= 0.5 basis and signs).

    Invariant: :math:`W[a,b,c] = \sum D^{l_1}_{aa'} D^{l_2}_{bb'} D^{l_3}_{cc'} W[a',b',c']` for
    every rotation; unit Frobenius norm. Computed once per triple (cached, CPU float64) and
    returned as a new tensor.

    Args:
        l1, l2, l3: degrees (ints >= 0) obeying the triangle rule :math:`|l_1-l_2| \le l_3 \le
            l_1+l_2`.
        dtype, device: of the result (default float64 on the CPU).

    Shapes:
        ``[2l1+1, 2l2+1, 2l3+1]``.

    Raises:
        ValueError: a negative or non-int degree, or a triple that violates the triangle rule.
    """
    for name, l in (("l1", l1), ("l2", l2), ("l3", l3)):
        if isinstance(l, bool) or not isinstance(l, int) or l < 0:
            raise ValueError(f"{name} must be an int >= 0, got {l!r}")
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        raise ValueError(f"({l1}, {l2}, {l3}) violates the triangle rule |l1-l2| <= l3 <= l1+l2")
    return _wigner_3j_cpu(l1, l2, l3).to(dtype=dtype or torch.float64, device=device, copy=True)
