"""Parameter-free sums over the triplets and quadruplets of each output edge, in the padded per-atom
layout (the factorised quadruplet sum is explained in the package docstring)."""

from __future__ import annotations

import torch
from torch import Tensor

from nnip_scaling.nn.directional.layout import lm_channels, pad_rows, take, take_padded
from nnip_scaling.nn.directional.basis import DirectionalFeatures

__all__ = ["quadruplet_aggregate", "triplet_aggregate"]


def triplet_aggregate(x: Tensor, features: DirectionalFeatures) -> Tensor:
    r"""Sum of input-edge features over the triplets of each output edge, per circular degree.

    .. math:: P_{uv,l} = \frac{1}{\sqrt{1 + n_v}} \sum_{k \in \mathcal N(v)\setminus\{u\}} c_l(\varphi_{uvk})\, x_{kv}

    One batched product per atom: ``[D * L, D] @ [D, C]``.

    Shapes:
        ``x [E, C]`` -> ``[E, num_spherical, C]``.
    """
    idx = features.index
    n, d = idx.n_atoms, idx.max_degree
    ls = features.triplet_radial.shape[2]
    xp = take_padded(x, idx.table.edge)  # [n, D, C]
    p = torch.bmm(features.triplet_angular, xp)  # [n, D * L, C]
    p = p.reshape(n * d, ls, x.shape[1]).index_select(0, idx.flat_slot)
    return p * features.atom_norm[idx.edge_index[1]][:, None, None]


def quadruplet_aggregate(y: Tensor, features: DirectionalFeatures) -> Tensor:
    r"""Sum of inner-triplet features over the quadruplets of each output edge, per spherical function.

    .. math:: P_{uv,lm} = \frac{1}{\sqrt{1 + c_v}}
              \sum_{k \in \mathcal N_q(v)\setminus\{u\}}\ \sum_{j \in \mathcal N(k)\setminus\{u, v\}}
              s_{lm}(\varphi_{uvk}, \omega_{uvkj}; \varphi_{vkj})\; y_{jk, kv}

    evaluated in factorised form (module docstring): :math:`Z_{kv} = \sum_j (\mathrm{Re},
    \mathrm{Im})(\delta^m)\, y_{jk,kv}` per middle edge, then :math:`\sum_k \Gamma_{uv,kv}\, Z_{kv}`
    per output edge, minus the excluded :math:`j = u` terms.

    Args:
        y: ``[E_q, D, C]`` features of the inner pairs ``(j -> k in slot s of k, k -> v)``.
        features: with quadruplet features.

    Shapes:
        ``y [E_q, D, C]`` -> ``[E, n_lm, C]``.
    """
    idx, qf = features.index, features.quadruplets
    assert qf is not None and idx.quadruplets is not None
    n, d = idx.n_atoms, idx.max_degree
    q = idx.quadruplets
    n_q, d_q = q.n_edges, q.table.shape[1]
    c = y.shape[-1]
    n_lm = qf.radial.shape[2]
    big_l = qf.delta.shape[1] // 2
    z = torch.bmm(qf.delta, y)  # [E_q, 2L, C]
    chan = lm_channels(big_l, y.device)
    zl = take_padded(z, q.table).index_select(2, chan.reshape(-1))  # [n, D_q, n_lm * 2, C]
    zl = zl.view(n, d_q, n_lm, 2, c).permute(0, 2, 1, 3, 4).reshape(n * n_lm, d_q * 2, c)
    p = torch.bmm(qf.gamma, zl).reshape(n, n_lm, d, c).permute(0, 2, 1, 3).reshape(n * d, n_lm, c)
    y_flat = pad_rows(y.reshape(n_q * d, c))
    y_corr = take(y_flat, q.correction).reshape(n * d, d_q, c)
    p = p - torch.bmm(qf.correction, y_corr)
    return p.index_select(0, idx.flat_slot) * qf.norm[:, None, None]
