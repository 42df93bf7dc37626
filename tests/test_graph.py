"""AtomicGraph: constructors, validation, collate, transformations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnip_scaling import AtomicGraph, collate
from nnip_scaling.data import builtin_molecules

WATER = (np.array([8, 1, 1]), np.array([[0.0, 0.0, 0.0], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0]]))
METHANE_Z = [6, 1, 1, 1, 1]
METHANE_R = [[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]


def test_from_molecules_batches_and_defaults_to_float32():
    g = AtomicGraph.from_molecules([WATER, (METHANE_Z, METHANE_R)])
    assert g.n_graphs == 2 and g.n_atoms == 8
    assert g.positions.dtype == torch.float32
    assert g.atomic_numbers.dtype == torch.int64
    assert g.batch.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert g.n_atoms_per_graph.tolist() == [3, 5]
    assert g.ptr.tolist() == [0, 3, 8]
    assert g.energy is None and g.forces is None and not g.has_edges
    assert torch.allclose(g.positions[3:].double(), torch.tensor(METHANE_R, dtype=torch.float64), atol=1e-6)


def test_from_molecules_with_labels_and_tensors():
    f = torch.randn(3, 3, dtype=torch.float64)
    g = AtomicGraph.from_molecules([(torch.tensor(WATER[0]), torch.tensor(WATER[1]), -2.5, f)], dtype=torch.float64)
    assert g.energy.tolist() == [-2.5]
    assert torch.equal(g.forces, f)


def test_from_arrays_and_empty_graphs_are_legal():
    g = AtomicGraph.from_arrays(np.zeros((2, 3)) + [[0, 0, 0], [1, 0, 0]], [1, 1], batch=[2, 2], n_graphs=4)
    assert g.n_graphs == 4 and g.n_atoms_per_graph.tolist() == [0, 0, 2, 0]
    empty = AtomicGraph.from_molecules([])
    assert empty.n_graphs == 0 and empty.n_atoms == 0
    assert empty.with_edges(5.0).n_edges == 0
    single = AtomicGraph.from_molecules([([6], [[0.0, 0.0, 0.0]])]).with_edges(5.0)
    assert single.n_atoms == 1 and single.n_edges == 0


def test_float_tensor_input_keeps_dtype_numpy_gets_default():
    assert AtomicGraph.from_arrays(torch.zeros(1, 3, dtype=torch.float64), [1]).dtype == torch.float64
    assert AtomicGraph.from_arrays(np.zeros((1, 3)), [1]).dtype == torch.get_default_dtype()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: AtomicGraph.from_arrays(np.zeros((2, 2)), [1, 1]), "positions"),
        (lambda: AtomicGraph.from_arrays([[0, 0, float("nan")]], [1]), "non-finite"),
        (lambda: AtomicGraph.from_arrays([[0, 0, 0]], [0]), "atomic_numbers"),
        (lambda: AtomicGraph.from_arrays([[0, 0, 0]], [119]), "atomic_numbers"),
        (lambda: AtomicGraph.from_arrays([[0, 0, 0]], [1.5]), "atomic_numbers"),
        (lambda: AtomicGraph.from_arrays([[0, 0, 0], [1, 0, 0]], [1]), "atomic_numbers"),
        (lambda: AtomicGraph.from_arrays([[0, 0, 0], [1, 0, 0]], [1, 1], batch=[1, 0]), "sorted"),
        (lambda: AtomicGraph.from_arrays([[0, 0, 0], [1, 0, 0]], [1, 1], batch=[0, 3], n_graphs=2), "batch"),
        (lambda: AtomicGraph.from_arrays([[0, 0, 0]], [1], energy=[1.0, 2.0]), "energy"),
        (lambda: AtomicGraph.from_arrays([[0, 0, 0]], [1], forces=[[1.0, 2.0]]), "forces"),
        (lambda: AtomicGraph.from_arrays([[0, 0, 0]], [1], energy=[float("inf")]), "energy"),
        (lambda: AtomicGraph.from_molecules([WATER, (WATER[0], WATER[1], 1.0, np.zeros((3, 3)))]), "labels"),
        (lambda: AtomicGraph.from_molecules([(WATER[0], WATER[1][:2])]), r"molecules\[0\]"),
        (lambda: AtomicGraph.from_molecules([(["a"], [[0, 0, 0]])]), r"molecules\[0\]"),
        (lambda: AtomicGraph.from_molecules(np.zeros(3)), "list"),
    ],
)
def test_validation_names_the_field(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_edges_stay_inside_graphs_and_edge_vec_needs_edge_index():
    g = AtomicGraph.from_arrays([[0, 0, 0], [1, 0, 0]], [1, 1], batch=[0, 1])
    with pytest.raises(ValueError, match="edge_vec was given without edge_index"):
        g.replace(edge_vec=torch.zeros(0, 3))
    assert g.replace(edge_index=torch.zeros(2, 0, dtype=torch.int64)).edge_vec.shape == (0, 3)
    with pytest.raises(ValueError, match="different graphs"):
        g.replace(edge_index=torch.tensor([[0], [1]]), edge_vec=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="edge_index"):
        g.replace(edge_index=torch.tensor([[0], [5]]), edge_vec=torch.zeros(1, 3))


def test_collate_offsets_edges_and_keeps_labels():
    a = AtomicGraph.from_molecules([(*WATER, 1.0, np.ones((3, 3)))], dtype=torch.float64).with_edges(3.0)
    b = AtomicGraph.from_molecules([(METHANE_Z, METHANE_R, 2.0, np.zeros((5, 3)))], dtype=torch.float64).with_edges(3.0)
    c = collate([a, b])
    direct = AtomicGraph.from_molecules(
        [(*WATER, 1.0, np.ones((3, 3))), (METHANE_Z, METHANE_R, 2.0, np.zeros((5, 3)))], dtype=torch.float64
    ).with_edges(3.0)
    assert c.n_graphs == 2 and c.energy.tolist() == [1.0, 2.0]
    assert torch.equal(c.positions, direct.positions) and torch.equal(c.batch, direct.batch)
    assert set(map(tuple, c.edge_index.t().tolist())) == set(map(tuple, direct.edge_index.t().tolist()))
    assert torch.equal(c.edge_vec, c.positions[c.edge_index[0]] - c.positions[c.edge_index[1]])
    # mismatched edge settings -> edges dropped, labels kept
    mixed = collate([a, b.with_edges(2.0)])
    assert not mixed.has_edges and mixed.energy is not None
    with pytest.raises(ValueError, match="empty"):
        collate([])
    with pytest.raises(ValueError, match="dtype"):
        collate([a, b.to(dtype=torch.float32)])


def test_unbatch_inverts_collate():
    mols = [m.as_tuple() for m in builtin_molecules(5)]
    g = AtomicGraph.from_molecules(mols, dtype=torch.float64).with_edges(4.0, 6)
    parts = g.unbatch()
    assert [p.n_atoms for p in parts] == g.n_atoms_per_graph.tolist()
    again = collate(parts)
    for name in ("positions", "atomic_numbers", "batch", "edge_index", "edge_vec"):
        assert torch.equal(getattr(again, name), getattr(g, name)), name


def test_to_casts_floating_fields_only():
    g = AtomicGraph.from_molecules([(*WATER, 1.0, np.ones((3, 3)))]).with_edges(3.0)
    h = g.to(dtype=torch.float64)
    assert h.positions.dtype == h.energy.dtype == h.forces.dtype == h.edge_vec.dtype == torch.float64
    assert h.atomic_numbers.dtype == h.batch.dtype == h.edge_index.dtype == torch.int64
    with pytest.raises(TypeError):
        g.to(dtype=torch.int64)


def test_with_positions_recomputes_edge_vec_and_carries_gradients():
    g = AtomicGraph.from_molecules([WATER], dtype=torch.float64).with_edges(3.0)
    pos = g.positions.detach().clone().requires_grad_(True)
    g2 = g.with_positions(pos)
    (g2.edge_vec.norm(dim=1).sum()).backward()
    assert pos.grad is not None and torch.isfinite(pos.grad).all() and pos.grad.abs().sum() > 0
    assert g.positions.grad is None  # original untouched (immutable)


def test_graph_is_frozen():
    g = AtomicGraph.from_molecules([WATER])
    with pytest.raises(Exception):
        g.n_graphs = 3  # type: ignore[misc]


def test_builtin_molecules_are_sane():
    mols = builtin_molecules()
    assert len(mols) == 90
    g = AtomicGraph.from_molecules([m.as_tuple() for m in mols], dtype=torch.float64).with_edges(6.0)
    d = g.edge_vec.norm(dim=1)
    assert float(d.min()) > 0.7  # no overlapping atoms
    assert set(g.atomic_numbers.unique().tolist()) <= {1, 6, 7, 8, 9, 16, 17}
    with pytest.raises(ValueError, match="n"):
        builtin_molecules(0)


# ---------------------------------------------------------------------------------------------
# Issue 14 audit defects: stale geometry, self-loops, dtype names


def _builtin(n=6, dtype=torch.float64):
    return AtomicGraph.from_molecules([m.as_tuple() for m in builtin_molecules(n)], dtype=dtype)


@pytest.mark.parametrize("kind", ["unconstrained", "cartesian"])
def test_replace_positions_never_evaluates_stale_geometry(kind):
    """Reproducer: m(g.replace(positions=moved)) used the old edge_vec (energy off by up to 6e-3)."""
    from nnip_scaling.models import build_model

    torch.manual_seed(0)
    model = build_model(kind, width=8, depth=1, dtype="float64")
    g = _builtin().with_edges(6.0, 30)
    moved = g.positions + 0.3 * torch.randn(g.positions.shape, dtype=torch.float64,
                                            generator=torch.Generator().manual_seed(1))
    fresh = _builtin().replace(positions=moved).with_edges(6.0, 30)
    via_replace = g.replace(positions=moved)
    assert torch.equal(via_replace.edge_index, fresh.edge_index)  # edges rebuilt, same settings
    assert torch.equal(via_replace.edge_vec, moved[fresh.edge_index[0]] - moved[fresh.edge_index[1]])
    assert torch.allclose(model(via_replace).energy, model(fresh).energy, rtol=0, atol=1e-12)
    # dataclasses.replace cannot carry a stale edge_vec either: it is derived from the new positions.
    import dataclasses

    raw = dataclasses.replace(g, positions=moved)
    assert torch.equal(raw.edge_vec, moved[g.edge_index[0]] - moved[g.edge_index[1]])


def test_constructor_rejects_edge_vec_that_contradicts_positions():
    g = _builtin(2).with_edges(4.0)
    fields = dict(positions=g.positions, atomic_numbers=g.atomic_numbers, batch=g.batch, n_graphs=g.n_graphs,
                  edge_index=g.edge_index)
    wrong = g.edge_vec + 1e-3
    with pytest.raises(ValueError, match="edge_vec disagrees with the positions"):
        AtomicGraph(**fields, edge_vec=wrong)
    with pytest.raises(ValueError, match="edge_vec disagrees"):
        g.replace(edge_vec=wrong)
    # The right vectors (to rounding) are accepted; and edge_vec may simply be left out.
    ok = AtomicGraph(**fields, edge_vec=g.edge_vec.float())  # float32 rounding of the right vectors
    assert torch.equal(ok.edge_vec, g.edge_vec)
    assert torch.equal(AtomicGraph(**fields).edge_vec, g.edge_vec)


def test_with_positions_keeps_edges_for_rigid_motion_and_refuses_stretch():
    g = _builtin(3).with_edges(4.0, 10)
    shifted = g.with_positions(g.positions + torch.tensor([5.0, -3.0, 2.0], dtype=torch.float64))
    assert torch.equal(shifted.edge_index, g.edge_index)
    assert torch.allclose(shifted.edge_vec, g.edge_vec, atol=1e-13)
    with pytest.raises(ValueError, match="beyond the graph's cutoff .* use replace\\(positions=...\\)"):
        g.with_positions(g.positions * 3.0)


@pytest.mark.parametrize("kind", ["unconstrained", "directional", "cartesian", "spherical"])
@pytest.mark.parametrize("forces", ["direct", "conservative"])
def test_self_loop_edges_are_rejected_with_a_clear_error(kind, forces):
    """Reproducer: a self-loop edge gave NaN energies; the graph now refuses it."""
    from nnip_scaling.models import build_model

    pos = torch.tensor([[0.0, 0, 0], [0.96, 0, 0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="self-loop.*atom 0 -> itself"):
        AtomicGraph(pos, torch.tensor([1, 8]), torch.zeros(2, dtype=torch.int64), 1,
                    edge_index=torch.tensor([[0, 1], [0, 0]]), edge_vec=torch.zeros(2, 3, dtype=torch.float64))
    # Without the self-loop the same graph evaluates to finite numbers in every family.
    g = AtomicGraph(pos, torch.tensor([1, 8]), torch.zeros(2, dtype=torch.int64), 1,
                    edge_index=torch.tensor([[1], [0]]))
    model = build_model(kind, width=4, depth=1, forces=forces, dtype="float64")
    out = model(g)
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()


def test_coincident_atoms_cannot_share_an_edge():
    pos = torch.tensor([[0.0, 0, 0], [0.0, 0, 0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="coincident"):
        AtomicGraph(pos, torch.tensor([1, 1]), torch.zeros(2, dtype=torch.int64), 1,
                    edge_index=torch.tensor([[0], [1]]))


@pytest.mark.parametrize("name, dtype", [("float64", torch.float64), ("float32", torch.float32),
                                         ("torch.float64", torch.float64), ("double", torch.float64)])
def test_dtype_may_be_given_by_name(name, dtype):
    """Reproducer: from_molecules(mols, dtype="float64") said "Invalid device string"."""
    assert AtomicGraph.from_molecules([WATER], dtype=name).dtype == dtype
    assert AtomicGraph.from_arrays(WATER[1], WATER[0], dtype=name).dtype == dtype
    assert AtomicGraph.from_molecules([WATER]).to(dtype=name).dtype == dtype
    with pytest.raises(TypeError, match="dtype must be a floating torch.dtype or one of"):
        AtomicGraph.from_molecules([WATER], dtype="cuda")
    with pytest.raises(TypeError, match="dtype must be a floating"):
        AtomicGraph.from_molecules([WATER], dtype=torch.int64)
