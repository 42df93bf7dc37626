"""Smooth-form options: defaults per force mode, config round trip, the discontinuity report."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nnip_scaling.models import build_model
from nnip_scaling.models.smoothness import discontinuities, is_smooth

KINDS = ("unconstrained", "cartesian", "spherical", "directional")


def _config(kind, **options):
    return build_model(kind, 4, 1, max_z=10, **options).config


@pytest.mark.parametrize("kind", KINDS)
def test_direct_models_keep_the_papers_form(kind):
    cfg = _config(kind)
    assert cfg.max_neighbors == 30
    expected = {"unconstrained": "mean", "cartesian": "mean", "spherical": "sum"}
    if kind in expected:
        assert cfg.aggregation == expected[kind]
    else:
        assert cfg.quadruplet_max_neighbors == 8
    options = {d.option for d in discontinuities(cfg)}
    assert "forces" in options and "max_neighbors" in options
    assert ("aggregation" in options) == (kind in ("unconstrained", "cartesian"))


@pytest.mark.parametrize("kind", KINDS)
def test_conservative_models_are_smooth_and_round_trip(kind):
    cfg = _config(kind, forces="conservative")
    assert is_smooth(cfg) and discontinuities(cfg) == ()
    assert cfg.max_neighbors is None
    again = build_model(**dataclasses.asdict(cfg)).config
    assert again == cfg


def test_explicit_options_win_over_the_defaults():
    cfg = _config("cartesian", forces="conservative", aggregation="mean", max_neighbors=12)
    assert (cfg.aggregation, cfg.max_neighbors) == ("mean", 12)
    assert [d.option for d in discontinuities(cfg)] == ["aggregation", "max_neighbors"]
    assert "aggregation='soft_mean'" in str(discontinuities(cfg)[0])
    cfg = _config("directional", forces="conservative", quadruplet_max_neighbors=4)
    assert [d.option for d in discontinuities(cfg)] == ["quadruplet_max_neighbors"]
    cfg = _config("directional", forces="conservative", quadruplets=False, quadruplet_max_neighbors=4)
    assert is_smooth(cfg)  # no quadruplet graph, no quadruplet cap


def test_a_cap_is_reported_only_where_it_can_bind():
    cfg = _config("unconstrained", forces="conservative", max_neighbors=5)
    assert is_smooth(cfg, n_atoms=6) and not is_smooth(cfg, n_atoms=7) and not is_smooth(cfg)


def test_bad_options_raise_naming_them():
    with pytest.raises(ValueError, match="aggregation"):
        _config("unconstrained", aggregation="max")
    with pytest.raises(ValueError, match="avg_num_neighbors"):
        _config("cartesian", aggregation="sum", avg_num_neighbors=-1.0)
    with pytest.raises(TypeError, match="unknown option"):
        _config("directional", aggregation="sum")
    with pytest.raises((TypeError, ValueError), match="max_neighbors"):
        _config("unconstrained", max_neighbors="automatic")
    with pytest.raises(TypeError, match="ModelConfig"):
        discontinuities({"forces": "direct"})


def test_smooth_forms_change_only_the_aggregation_not_the_parameters():
    torch.manual_seed(0)
    a = build_model("cartesian", 4, 2, aggregation="mean", max_z=10)
    b = build_model("cartesian", 4, 2, aggregation="soft_mean", max_z=10)
    assert a.n_parameters == b.n_parameters
    b.load_state_dict(a.state_dict())
