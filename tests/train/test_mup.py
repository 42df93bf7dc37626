"""μP learning rates (nnip_scaling.train.mup): classification of every parameter, groups, train() integration."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from nnip_scaling.models import KINDS, build_model
from nnip_scaling.train import TrainConfig, train
from nnip_scaling.train.mup import (
    LR_RULES,
    ROLES,
    MuPClassificationError,
    check_init,
    classify_parameters,
    format_rules,
    parameter_groups,
)

# Small versions of the study's ladders (all family options that change parameter shapes kept small).
OPTIONS = {
    "unconstrained": {},
    "directional": dict(num_radial=16, basis_dim=4, triplet_dim=4, quadruplet_dim=4, sbf_dim=4),
    "cartesian": dict(n_radial=8),
    "spherical": dict(l_max=2, m_max=1, hidden_channels=4, num_radial=8),
}


def _model(kind: str, width: int, depth: int = 1, **kw) -> nn.Module:
    torch.manual_seed(0)
    return build_model(kind, width, depth, **{**OPTIONS[kind], **kw})


@pytest.mark.parametrize("kind", KINDS)
def test_every_parameter_is_classified_and_scaled_by_its_fan_in(kind):
    base, width = 6, 24
    model = _model(kind, width)
    rules = classify_parameters(model, base)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert [r.name for r in rules] == names
    base_shapes = {n: tuple(p.shape) for n, p in _model(kind, base).named_parameters()}
    for r in rules:
        assert r.role in ROLES
        assert r.base_shape == base_shapes[r.name]
        if r.role in ("hidden", "output"):
            assert r.fan_in > r.base_fan_in and r.mup_scale == pytest.approx(r.base_fan_in / r.fan_in)
        else:
            assert r.mup_scale == 1.0
        if r.role == "fixed":
            assert r.shape == r.base_shape
    roles = {r.name: r.role for r in rules}
    assert roles["embedding.weight"] == "input"  # embeddings keep eta*
    assert {"hidden", "output", "input"} <= set(roles.values())
    # every bias / norm gain that grows with the width keeps eta*
    for r in rules:
        if r.name.endswith("bias") and r.width_dims:
            assert r.role == "input", r.name
    # the table names every parameter
    table = format_rules(rules)
    assert all(n in table for n in names)


def test_nn_linear_roles_from_shapes():
    model = _model("unconstrained", 32)
    rules = {r.name: r for r in classify_parameters(model, 8)}
    w = rules["representation.blocks.0.lin_source.weight"]  # [w, w]
    assert (w.role, w.fan_in, w.base_fan_in, w.mup_scale) == ("hidden", 32, 8, 0.25)
    assert rules["representation.blocks.0.lin_geometry.weight"].role == "input"  # [w, 4]: fixed fan-in
    assert rules["energy_head.mlp.layers.1.weight"].role == "output"  # [1, w] readout
    assert rules["energy_head.mlp.layers.1.bias"].role == "fixed"  # [1]
    assert rules["representation.blocks.0.lin_target.bias"].role == "input"


def test_declared_fan_in_of_custom_layouts():
    # spherical: weights stored [fan_in, fan_out] (x @ W) and [l, C_in, C_out]; the force readout is a vector
    rules = {r.name: r for r in classify_parameters(_model("spherical", 16), 4)}
    assert rules["force_head.weight"].role == "output" and rules["force_head.weight"].mup_scale == 0.25
    conv2 = [r for n, r in rules.items() if n.endswith("conv_2.weight_m0")][0]  # [hidden, K*C]: fan-out grows
    assert conv2.role == "input"
    conv1 = [r for n, r in rules.items() if ".conv_1.weights_m." in n][0]  # [K*C, hidden]: fan-in grows
    assert conv1.role == "output" and conv1.mup_scale == pytest.approx(0.25)
    norm = [r for n, r in rules.items() if n.endswith("norm.weight")][0]
    assert norm.role == "input"
    # edge_channels defaults to the width: its layers follow the width in the shape comparison
    src = rules["representation.source_embedding.weight"]
    assert src.role == "input" and src.base_shape[1] == 4


def test_cartesian_vector_channels_scale_with_sqrt_width():
    rules = {r.name: r for r in classify_parameters(_model("cartesian", 64), 16)}
    norms = rules["representation.blocks.0.lin_norms.weight"]  # [w, E], E = floor(sqrt(w)): 4 -> 8
    assert norms.role == "hidden" and (norms.base_fan_in, norms.fan_in) == (4, 8)
    assert rules["representation.blocks.0.lin_mix.weight"].mup_scale == pytest.approx(0.25)  # fan-in w


def test_undeclared_width_dependent_parameter_raises_naming_it():
    class Odd(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.lin = nn.Linear(w, w)
            self.scale = nn.Parameter(torch.ones(w, 3))

    with pytest.raises(MuPClassificationError, match=r"'scale' of Odd.*mup_fan_in"):
        classify_parameters(Odd(8), base_model=Odd(4), probe_model=Odd(16))

    class Declared(Odd):
        mup_fan_in = {"scale": (1,)}

    rules = {r.name: r for r in classify_parameters(Declared(8), base_model=Declared(4), probe_model=Declared(16))}
    assert rules["scale"].role == "input" and rules["lin.weight"].role == "hidden"


def test_rank_change_raises():
    class Bad(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(*([2] * (w // 4))))

    with pytest.raises(MuPClassificationError, match="changes rank"):
        classify_parameters(Bad(8), base_model=Bad(4), probe_model=Bad(16))


@pytest.mark.parametrize("kind", KINDS)
def test_groups_cover_every_parameter_once(kind):
    model = _model(kind, 12)
    ids = [id(p) for p in model.parameters() if p.requires_grad]
    for rule in LR_RULES:
        groups = parameter_groups(model, 1e-2, lr_rule=rule, base_width=6)
        got = [id(p) for g in groups for p in g["params"]]
        assert sorted(got) == sorted(ids)
    (only,) = parameter_groups(model, 1e-2, lr_rule="global", base_width=6)
    assert only["lr"] == pytest.approx(1e-2 * 6 / 12) and only["role"] == "all"
    (only,) = parameter_groups(model, 1e-2, base_width=None)  # no transfer: lr as given
    assert only["lr"] == 1e-2
    mup = parameter_groups(model, 1e-2, lr_rule="mup", base_width=6)
    by_role = {g["role"]: g["lr"] for g in mup}
    assert by_role["input"] == 1e-2 and by_role["hidden"] == pytest.approx(0.5e-2)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("width", [8, 32])
def test_initialisation_follows_the_roles(kind, width):
    model = _model(kind, width)
    assert check_init(model, classify_parameters(model, 8)) == []


def test_check_init_flags_a_wrong_scale():
    model = _model("unconstrained", 32)
    with torch.no_grad():
        model.representation.blocks[0].lin_source.weight.mul_(30.0)
    bad = check_init(model, classify_parameters(model, 8))
    assert len(bad) == 1 and "lin_source" in bad[0]


def test_train_config_lr_rule():
    assert TrainConfig().lr_rule == "mup"
    with pytest.raises(ValueError, match="lr_rule"):
        TrainConfig(lr_rule="sp")


def test_train_uses_per_parameter_rates(toy):
    tr, va = toy
    opts = dict(steps=2, batch_size=8, lr=4e-3, base_width=8, kappa=1.0, progress=False, eval_every=2)
    res = train(_model("unconstrained", 32), tr, va, **opts)
    roles = {role: lr for role, lr, _ in res.lr_groups}
    assert roles["hidden"] == pytest.approx(1e-3) and roles["input"] == pytest.approx(4e-3)
    assert res.lr == pytest.approx(1e-3)  # logged: eta* w_base / w, the hidden weights' rate
    assert sum(n for *_, n in res.lr_groups) == res.n_params
    res = train(_model("unconstrained", 32), tr, va, lr_rule="global", **opts)
    assert res.lr_groups == (("all", pytest.approx(1e-3), res.n_params),)


def test_resume_with_mup_groups_is_exact_and_old_checkpoints_mean_global(toy, tmp_path):
    tr, va = toy
    opts = dict(batch_size=8, eval_every=3, lr=3e-3, base_width=8, seed=1, kappa=1.0, progress=False)
    full = train(_model("cartesian", 16), tr, va, steps=6, out_dir=tmp_path / "a", **opts)
    train(_model("cartesian", 16), tr, va, steps=3, out_dir=tmp_path / "b", **opts)
    rest = train(_model("cartesian", 16), tr, va, steps=6, out_dir=tmp_path / "b", resume=True, **opts)
    strip = [{k: v for k, v in dataclasses.asdict(r).items() if k != "hours"} for r in rest.rows]
    assert strip == [{k: v for k, v in dataclasses.asdict(r).items() if k != "hours"} for r in full.rows]
    # a checkpoint written before lr_rule existed was trained with the global rule: resuming it under
    # the new default is refused, naming the option
    from nnip_scaling.train.checkpoint import atomic_save, load_checkpoint

    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    del ckpt["train_config"]["lr_rule"]
    atomic_save(ckpt, tmp_path / "b" / "checkpoint.pt")
    with pytest.raises(ValueError, match="lr_rule: saved 'global'"):
        train(_model("cartesian", 16), tr, va, steps=9, out_dir=tmp_path / "b", resume=True, **opts)


# ---------------------------------------------------------------------------------------------- coordinate check
# Widths 4x apart, float64, 4 seeds pooled, a small lr (first-order changes): see nnip_scaling.train.coordcheck.
COORD = {
    "unconstrained": (16, 64, 2, {}),
    "directional": (16, 64, 1, dict(num_radial=16, basis_dim=8, triplet_dim=8, quadruplet_dim=4, sbf_dim=4)),
    "cartesian": (16, 64, 2, dict(n_radial=16)),
    "spherical": (16, 64, 1, dict(l_max=2, m_max=2, hidden_channels=8, num_radial=16)),
}


@pytest.fixture(scope="module")
def coord_batch():
    from nnip_scaling.data import Normaliser, iter_batches, load_dataset

    ds = load_dataset("builtin", split="train").select(list(range(64)))
    return next(iter_batches(ds.select([0, 1]), 2, normaliser=Normaliser.fit(ds), dtype=torch.float64))


def _coord(kind, batch, rule, seeds):
    from nnip_scaling.train.coordcheck import coordinate_check

    w0, w1, depth, opts = COORD[kind]
    return coordinate_check(lambda w: build_model(kind, w, depth, dtype="float64", **opts), (w0, w1), batch,
                            base_width=w0, lr=1e-4, lr_rule=rule, steps=2, seeds=seeds)


@pytest.mark.parametrize("kind", KINDS)
def test_coordinate_check_mup_blocks_move_alike_across_widths(kind, coord_batch):
    res = _coord(kind, coord_batch, "mup", seeds=(0, 1, 2, 3))
    ratios = res.ratios()
    # the embedding (an input layer, eta*) moves exactly alike; every block within 2x over 4x the width
    assert ratios["embedding"] == pytest.approx(1.0, rel=0.1), res.table()
    blocks = {n: r for n, r in ratios.items() if n.startswith("representation")}
    assert blocks and all(0.5 < r < 2.0 for r in blocks.values()), res.table()
    # (the heads are not asserted: a readout to 1 or 3 outputs updated by Adam's sign steps is far from its
    # wide limit at these widths; docs/training.md, "Coordinate check", lists their ratios)


@pytest.mark.parametrize("kind", KINDS)
def test_coordinate_check_global_rule_slows_the_embedding_of_wider_models(kind, coord_batch):
    # under the paper's global rule the embedding's rate is eta* w0/w: a 4x wider model's embedding moves
    # 4x less (Adam's step is the rate times a sign), in every family
    res = _coord(kind, coord_batch, "global", seeds=(0,))
    assert res.ratio("embedding") < 0.4, res.table()
