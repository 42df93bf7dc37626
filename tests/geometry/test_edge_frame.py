"""edge_frame: maps edges onto +y, proper orthogonal, finite gradients at and near +-y, roll."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnip_scaling.geometry import edge_frame, random_rotation, spherical_harmonics, wigner_D_blocks

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: 5e-6, torch.float64: 1e-13}

POLE_EDGES = [
    [0.0, 1.0, 0.0],
    [0.0, -1.0, 0.0],
    [0.0, 3.5, 0.0],
    [0.0, -0.2, 0.0],
    [1e-12, 1.0, 0.0],
    [0.0, -1.0, 1e-12],
    [1e-7, 2.0, -1e-7],
    [-1e-7, -2.0, 3e-7],
    [0.0, 0.0, 1.0],  # along the switch-over axis (reference becomes x)
    [0.0, 0.0, -1.0],
    [1.0, 0.0, 0.0],
]


def _check_frames(e, f, dtype):
    eye = torch.eye(3, dtype=dtype)
    u = e / e.norm(dim=-1, keepdim=True)
    fy = (f @ u[..., None])[..., 0]
    torch.testing.assert_close(fy, torch.tensor([0.0, 1.0, 0.0], dtype=dtype).expand_as(fy), rtol=0, atol=TOL[dtype])
    torch.testing.assert_close(f @ f.transpose(-1, -2), eye.expand_as(f), rtol=0, atol=TOL[dtype])
    torch.testing.assert_close(torch.linalg.det(f), torch.ones(f.shape[:-2], dtype=dtype), rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pole_edges_map_to_plus_y(dtype):
    e = torch.tensor(POLE_EDGES, dtype=dtype)
    f = edge_frame(e)
    assert f.shape == (len(e), 3, 3) and f.dtype == dtype
    _check_frames(e, f, dtype)
    # documented roll convention at the poles
    assert torch.equal(f[0], torch.eye(3, dtype=dtype))
    assert torch.equal(f[1], torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=dtype)))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from(DTYPES), scale=st.floats(1e-3, 1e3))
def test_random_edges_map_to_plus_y(seed, dtype, scale):
    g = torch.Generator().manual_seed(seed)
    e = (torch.randn(16, 3, generator=g, dtype=torch.float64) * scale).to(dtype)
    roll = (torch.rand(16, generator=g, dtype=torch.float64) * 2 * math.pi).to(dtype)
    _check_frames(e, edge_frame(e), dtype)
    _check_frames(e, edge_frame(e, roll_angle=roll), dtype)


def test_roll_angle_is_a_rotation_about_y():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(5, 3, generator=g, dtype=torch.float64)
    f = edge_frame(e)
    phi = torch.tensor([0.0, 0.5, -1.0, math.pi, 2.0], dtype=torch.float64)
    fr = edge_frame(e, roll_angle=phi)
    rel = fr @ f.transpose(-1, -2)  # = R_y(phi)
    c, s = torch.cos(phi), torch.sin(phi)
    torch.testing.assert_close(rel[:, 0, 0], c, rtol=0, atol=1e-14)
    torch.testing.assert_close(rel[:, 0, 2], s, rtol=0, atol=1e-14)
    torch.testing.assert_close(rel[:, 2, 0], -s, rtol=0, atol=1e-14)
    torch.testing.assert_close(rel[:, 1, 1], torch.ones(5, dtype=torch.float64), rtol=0, atol=1e-14)
    # scalar roll broadcasts
    torch.testing.assert_close(
        edge_frame(e, roll_angle=torch.tensor(0.5, dtype=torch.float64))[1], fr[1], rtol=0, atol=1e-14
    )
    with pytest.raises(ValueError, match="roll_angle"):
        edge_frame(e, roll_angle=torch.zeros(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="roll_angle"):
        edge_frame(e, roll_angle=0.5)


def test_gradcheck_at_and_near_poles():
    e = torch.tensor(POLE_EDGES[:8], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(edge_frame, (e,))
    roll = torch.linspace(0, 3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, r: edge_frame(v, roll_angle=r), (e, roll), fast_mode=True)
    assert torch.autograd.gradgradcheck(edge_frame, (e,), fast_mode=True)


def test_gradient_finite_through_the_reference_switch():
    # exactly on the z axis the reference is x; the z branch would divide by zero. torch.where
    # must not leak NaN from the unselected branch into the gradient.
    e = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -2.0], [0.0, 0.4359, 0.9]], dtype=torch.float64)
    e.requires_grad_(True)
    f = edge_frame(e)
    (g,) = torch.autograd.grad((f * torch.arange(9.0, dtype=torch.float64).reshape(3, 3)).sum(), e)
    assert torch.isfinite(g).all()


def test_rotation_equivariance_of_frame_up_to_roll():
    # F(Q e) Q F(e)^T fixes +y, hence is a rotation about y (a roll): frames are covariant up to roll
    g = torch.Generator().manual_seed(4)
    e = torch.randn(20, 3, generator=g, dtype=torch.float64)
    q = random_rotation(generator=g, dtype=torch.float64)
    rel = edge_frame(e @ q.T) @ q @ edge_frame(e).transpose(-1, -2)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(rel @ y, y.expand(20, 3), rtol=0, atol=1e-13)
    # so the l-th harmonic of the rotated edge seen in its own frame is the same: Y(F e) = Y(y)
    ye = spherical_harmonics(4, (edge_frame(e) @ e[..., None])[..., 0])
    torch.testing.assert_close(ye, spherical_harmonics(4, y).expand_as(ye), rtol=0, atol=1e-12)
    # and D(F(e)) Y(e) = Y(+y) for every l (what the SO(2) block relies on)
    d = wigner_D_blocks(4, edge_frame(e))
    y_e = spherical_harmonics(4, e)
    for l in range(5):
        lhs = (d[l] @ y_e[:, l * l : (l + 1) ** 2, None])[..., 0]
        torch.testing.assert_close(lhs, ye[:, l * l : (l + 1) ** 2], rtol=0, atol=1e-12)


def test_zero_length_edge_gives_nan_not_an_error():
    # documented: no device synchronisation to check; the graph layer rejects coincident atoms
    f = edge_frame(torch.zeros(1, 3))
    assert torch.isnan(f).all()


def test_validation():
    with pytest.raises(ValueError, match="edge_vec"):
        edge_frame(torch.ones(4, 2))
    with pytest.raises(TypeError, match="edge_vec"):
        edge_frame(torch.ones(4, 3, dtype=torch.long))
