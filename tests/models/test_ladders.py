"""Ladders of tables 3 and 4: configs, closed-form parameter counts, and the 10% agreement with the paper."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from nnip_scaling.models import build_model, ladder, ladder_comparison, paper_ladder


def unconstrained_params(w: int, d: int, max_z: int = 100) -> int:
    """Embedding Zw + d blocks (2w^2 + 5w + 16w radial filter) + energy head (w^2 + 2w + 1) + force head
    (w^2 + 4w + 3)."""
    return max_z * w + d * (2 * w * w + 21 * w) + (w * w + 2 * w + 1) + (w * w + 4 * w + 3)


def cartesian_params(w: int, d: int, e: int, r: int = 128, max_z: int = 100) -> int:
    """Embedding, vector init (R E), d blocks (7w^2 + wE^2 + (E+R+5)w), energy head, vector force head (wE + E)."""
    return max_z * w + r * e + d * (7 * w * w + w * e * e + (e + r + 5) * w) + (w * w + 2 * w + 1) + (w * e + e)


@pytest.mark.parametrize("w", [1, 3, 17])
def test_closed_forms(w):
    assert build_model("unconstrained", w, 3).n_parameters == unconstrained_params(w, 3)
    assert build_model("unconstrained", w, 2, max_z=10).n_parameters == unconstrained_params(w, 2, 10)
    # conservative models carry no force head
    cons = build_model("unconstrained", w, 2, forces="conservative").n_parameters
    assert cons == unconstrained_params(w, 2) - (w * w + 4 * w + 3)
    e = math.isqrt(w)
    assert build_model("cartesian", w, 2).n_parameters == cartesian_params(w, 2, e)
    assert build_model("cartesian", w, 2, n_radial=0).n_parameters == cartesian_params(w, 2, e, r=0) + e


def test_ladder_configs_match_tables():
    for kind, depth in (("unconstrained", 5), ("cartesian", 12)):
        cfgs, rungs = ladder(kind), paper_ladder(kind)
        assert len(cfgs) == len(rungs) == {"unconstrained": 15, "cartesian": 14}[kind]
        assert all(c.depth == depth and c.forces == "direct" and c.cutoff == 6.0 and c.max_neighbors == 30
                   for c in cfgs)
        assert [c.width for c in cfgs] == [r.width for r in rungs]
    assert [c.n_vector_channels for c in ladder("cartesian")][:3] == [5, 6, 7]


@pytest.mark.parametrize("kind", ["unconstrained", "cartesian"])
def test_parameter_counts_within_ten_percent_of_paper(kind):
    rows = ladder_comparison(kind)
    worst = max(abs(r.relative_difference) for r in rows)
    assert worst < 0.10, [(r.config.width, r.params, r.paper_params) for r in rows]
    # the comparison is real: our counts are the closed form, not the table
    for r in rows:
        w = r.config.width
        want = unconstrained_params(w, 5) if kind == "unconstrained" else cartesian_params(w, 12, math.isqrt(w))
        assert r.params == want


def test_largest_rung_builds_on_meta_only():
    cfg = ladder("unconstrained")[-1]
    with torch.device("meta"):
        model = build_model(**dataclasses.asdict(cfg))
    assert model.n_parameters == unconstrained_params(2557, 5)
    assert next(model.parameters()).is_meta


def test_paper_ladder_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        paper_ladder("gnn")
    with pytest.raises(ValueError, match="kind"):
        ladder("gnn")
