"""Our Wigner 3j symbols: invariance, normalisation, agreement with e3nn >= 0.5, and the e3nn
0.4.x sign difference that is the reason they are ours."""

import pytest
import torch

from nnip_scaling.geometry import random_rotation, wigner_D
from nnip_scaling.geometry._e3nn import e3nn_o3, e3nn_version
from nnip_scaling.geometry.clebsch_gordan import wigner_3j
from nnip_scaling.geometry.spherical import _y_generator_antidiag

F64 = torch.float64
TRIPLES = [(l1, l2, l3) for l1 in range(5) for l2 in range(5) for l3 in range(abs(l1 - l2), min(l1 + l2, 4) + 1)]


@pytest.mark.parametrize("l1,l2,l3", TRIPLES)
def test_wigner_3j_is_invariant_and_normalised(l1, l2, l3):
    w = wigner_3j(l1, l2, l3)
    assert w.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1) and w.dtype == F64
    assert torch.linalg.vector_norm(w).item() == pytest.approx(1.0, abs=1e-13)
    r = random_rotation(1, generator=torch.Generator().manual_seed(l1 * 25 + l2 * 5 + l3), dtype=F64)[0]
    d1, d2, d3 = (wigner_D(l, r) for l in (l1, l2, l3))
    rotated = torch.einsum("ai,bj,ck,ijk->abc", d1, d2, d3, w)
    torch.testing.assert_close(rotated, w, rtol=0, atol=1e-12)


def test_wigner_3j_returns_a_fresh_tensor_in_the_requested_dtype():
    a = wigner_3j(1, 1, 2, dtype=torch.float32)
    a.zero_()
    assert a.dtype == torch.float32 and wigner_3j(1, 1, 2).abs().sum() > 0


@pytest.mark.parametrize("bad", [(1, 1, 3), (-1, 1, 1), (1.0, 1, 1), (True, 1, 1)])
def test_wigner_3j_rejects_bad_degrees(bad):
    with pytest.raises(ValueError, match="triangle|int >= 0"):
        wigner_3j(*bad)


@pytest.mark.skipif(e3nn_version() < (0, 5), reason="e3nn < 0.5 has other signs (next test)")
def test_wigner_3j_equals_e3nn():
    o3 = e3nn_o3()
    for l1 in range(7):
        for l2 in range(7):
            for l3 in range(abs(l1 - l2), min(l1 + l2, 6) + 1):
                ref = o3.wigner_3j(l1, l2, l3, dtype=F64)
                torch.testing.assert_close(wigner_3j(l1, l2, l3), ref, rtol=0, atol=1e-12)


@pytest.mark.skipif(e3nn_version() >= (0, 5), reason="only e3nn 0.4.x differs")
def test_e3nn_04_differs_only_by_signs():
    """Why the symbols are ours: e3nn 0.4.x gives the same tensors up to a sign, not always +."""
    o3 = e3nn_o3()
    flipped = 0
    for l1, l2, l3 in TRIPLES:
        ours, ref = wigner_3j(l1, l2, l3), o3.wigner_3j(l1, l2, l3, dtype=F64)
        same = torch.allclose(ours, ref, rtol=0, atol=1e-12)
        assert same or torch.allclose(ours, -ref, rtol=0, atol=1e-12)
        flipped += not same
    assert flipped > 0


@pytest.mark.skipif(e3nn_version() < (0, 5), reason="so3_generators appeared in e3nn 0.5")
def test_y_rotation_frequencies_match_e3nn_generator():
    o3 = e3nn_o3()
    for l in range(8):
        g = o3.so3_generators(l)[1].to(F64)
        idx = torch.arange(2 * l + 1)
        anti = torch.round(g[idx, 2 * l - idx])
        anti[l] = 0.0
        assert torch.equal(anti, _y_generator_antidiag(l))
