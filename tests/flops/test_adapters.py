"""Adapters of issue 13 against the real packages (skipped with the reason where absent), the
generic callable adapter, and the errors that say what to do."""

import numpy as np
import pytest
import torch
from torch import nn

from nnip_scaling.flops import count_flops, estimate_kappa
from nnip_scaling.flops.adapters import ADAPTERS, CallableAdapter, find_adapter, get_adapter
from nnip_scaling.flops.kappa import probe_graphs
from nnip_scaling.graph import AtomicGraph
from nnip_scaling.models import build_model
from nnip_scaling.nn import CartesianVectorBlock, MissingEdgesError, SO2Block, UnconstrainedBlock
from nnip_scaling.nn.directional import build_directional_index


def _importable(name):
    try:
        __import__(name)
        return True
    except Exception:  # noqa: BLE001 - a package that is installed but does not import counts as absent
        return False


# ---------------------------------------------------------------------------------------------
# errors that say what to do


class _OwnBlocks(nn.Module):
    """A custom model of our blocks, without a config: the reproducer of issue 13."""

    def __init__(self, width=8):
        super().__init__()
        self.embed = nn.Embedding(100, width)
        self.block = UnconstrainedBlock(width, cutoff=5.0)
        self.out = nn.Linear(width, 1)

    def forward(self, g):
        h = self.block(self.embed(g.atomic_numbers), g.edge_index, g.edge_vec)
        return self.out(h).sum()


def test_block_without_edges_says_to_build_them():
    g = probe_graphs([2])[0]
    h = torch.zeros(g.n_atoms, 8)
    with pytest.raises(MissingEdgesError, match=r"graph.with_edges\(cutoff\)"):
        UnconstrainedBlock(8, cutoff=5.0)(h, g.edge_index, g.edge_vec)
    with pytest.raises(MissingEdgesError, match="CartesianVectorBlock got edge_index=None, edge_vec=None"):
        CartesianVectorBlock(8, cutoff=5.0)(h, torch.zeros(g.n_atoms, 3, 4), None, None)
    with pytest.raises(MissingEdgesError, match="SO2Block"):
        SO2Block(4, l_max=2, m_max=1, edge_features=8, edge_channels=8)(torch.zeros(g.n_atoms, 9, 4), None, None, None, None)
    with pytest.raises(MissingEdgesError, match="build_directional_index"):
        build_directional_index(None, None, g.n_atoms)
    assert issubclass(MissingEdgesError, ValueError)


def test_estimate_kappa_asks_for_a_cutoff_and_uses_it():
    model = _OwnBlocks()
    with pytest.raises(MissingEdgesError, match=r"estimate_kappa\(model, cutoff=\.\.\., max_neighbors=\.\.\.\)"):
        estimate_kappa(model, batch_sizes=(3,))
    est = estimate_kappa(model, batch_sizes=(3, 9), cutoff=5.0)
    assert est.cutoff == 5.0 and est.mean_neighbors is not None and est.kappa > 0
    ref = probe_graphs([3])[0].with_edges(5.0)
    assert est.points[0].n_edges == ref.edge_index.shape[1]
    capped = estimate_kappa(model, batch_sizes=(9,), cutoff=5.0, max_neighbors=2)
    # the cap keeps 2 sources per atom plus those tied with the 2nd (radius_graph), as with_edges does
    assert capped.points[0].n_edges == probe_graphs([9])[0].with_edges(5.0, 2).edge_index.shape[1]
    assert capped.points[0].n_edges < probe_graphs([9])[0].with_edges(5.0).edge_index.shape[1]


@pytest.mark.parametrize("kwargs,match", [({"cutoff": -1.0}, "cutoff must be a positive"),
                                          ({"cutoff": float("nan")}, "cutoff must be a positive"),
                                          ({"max_neighbors": 4}, "pass cutoff too"),
                                          ({"cutoff": 5.0, "max_neighbors": 0}, "max_neighbors must be")])
def test_estimate_kappa_rejects_bad_edge_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        estimate_kappa(_OwnBlocks(), batch_sizes=(3,), **kwargs)


def test_foreign_model_without_adapter_names_the_adapters():
    class Foreign(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, z, pos, batch):
            return self.lin(pos).sum()

    Foreign.__module__ = "someones_package.models"
    with pytest.raises(TypeError, match="pass adapter="):
        estimate_kappa(Foreign(), batch_sizes=(3,))


def test_adapter_lookup_errors():
    with pytest.raises(ValueError, match="unknown adapter 'nequip'"):
        get_adapter("nequip")
    assert find_adapter(build_model("unconstrained", width=8, depth=1)) is None
    for name, (_, _, package, requirement) in ADAPTERS.items():
        if not _importable(package):
            with pytest.raises(ImportError, match=f"pip install {requirement}"):
                get_adapter(name)


def test_callable_adapter_validates():
    with pytest.raises(TypeError, match="to_inputs must be callable"):
        CallableAdapter(3)
    with pytest.raises(ValueError, match="cutoff"):
        CallableAdapter(lambda g: g, cutoff=0)
    with pytest.raises(TypeError, match="adapter must be"):
        estimate_kappa(_OwnBlocks(), batch_sizes=(3,), adapter=3)


# ---------------------------------------------------------------------------------------------
# the generic callable adapter, checked against a hand count


class _FilterNet(nn.Module):
    """A SchNet-style continuous-filter network written out: per edge, a filter MLP on G Gaussians
    (G -> F -> F); per atom, in/out projections. Takes ``(z, pos, batch, edge_index)``."""

    def __init__(self, hidden=12, filters=10, gaussians=6, cutoff=5.0):
        super().__init__()
        self.embed = nn.Embedding(100, hidden)
        self.centers = torch.linspace(0.0, cutoff, gaussians)
        self.filter = nn.Sequential(nn.Linear(gaussians, filters), nn.SiLU(), nn.Linear(filters, filters))
        self.lin_in = nn.Linear(hidden, filters, bias=False)
        self.lin_out = nn.Linear(filters, hidden)
        self.energy = nn.Linear(hidden, 1)

    def forward(self, z, pos, batch, edge_index):
        src, dst = edge_index
        d = (pos[src] - pos[dst]).norm(dim=-1)
        w = self.filter(torch.exp(-(d[:, None] - self.centers) ** 2))
        x = self.lin_in(self.embed(z))
        m = torch.zeros_like(x).index_add_(0, dst, x[src] * w)
        h = self.lin_out(m)
        return torch.zeros(int(batch.max()) + 1).index_add_(0, batch, self.energy(h).squeeze(-1))


def test_callable_adapter_counts_the_hand_counted_matmuls():
    net = _FilterNet()
    adapter = CallableAdapter(lambda g: (g.atomic_numbers, g.positions, g.batch, g.edge_index), cutoff=5.0)
    est = estimate_kappa(net, batch_sizes=(4, 16), adapter=adapter)
    g = probe_graphs([16])[0].with_edges(5.0)
    n, e = g.n_atoms, g.edge_index.shape[1]
    rep = count_flops(net, *adapter.inputs(net, g))
    hidden, filters, gaussians = 12, 10, 6
    matmul = 2 * e * (gaussians * filters + filters * filters) + 2 * n * (hidden * filters + filters * hidden + hidden)
    assert rep.matmul == matmul
    assert est.points[1].flops == rep.total and est.points[1].n_edges == e and est.adapter == "callable"


# ---------------------------------------------------------------------------------------------
# real packages


def _energies_are_batch_consistent(model, adapter, graphs):
    """The adapter's input is right if a batch of molecules gives each molecule's own energy."""
    both = AtomicGraph.from_molecules([m for g in graphs for m in [(g.atomic_numbers.numpy(), g.positions.numpy())]])
    cutoff, cap = adapter.cutoff(model), adapter.max_neighbors(model)

    def energy(g):
        out = adapter.forward(model, adapter.inputs(model, g.with_edges(cutoff, max_neighbors=cap)))
        return adapter.energy(out).detach().reshape(-1)

    separate = torch.cat([energy(g) for g in graphs])
    torch.testing.assert_close(energy(both), separate, rtol=1e-4, atol=1e-4)


def _split(g):
    out = []
    for b in range(g.n_graphs):
        sel = g.batch == b
        out.append(AtomicGraph.from_molecules([(g.atomic_numbers[sel].numpy(), g.positions[sel].numpy())]))
    return out


@pytest.mark.skipif(not _importable("torch_geometric"), reason="torch-geometric is not installed (extra: interop)")
def test_pyg_schnet_and_visnet():
    from torch_geometric.nn.models import SchNet, ViSNet

    torch.manual_seed(0)
    hidden, filters, gaussians, blocks = 16, 12, 10, 2
    schnet = SchNet(hidden_channels=hidden, num_filters=filters, num_interactions=blocks, num_gaussians=gaussians,
                    cutoff=5.0)
    visnet = ViSNet(hidden_channels=16, num_layers=2, num_rbf=8, cutoff=5.0, lmax=1, num_heads=2)
    for model in (schnet, visnet):
        adapter = find_adapter(model)
        assert adapter.name == "pyg"
        _energies_are_batch_consistent(model, adapter, _split(probe_graphs([3])[0]))
        est = estimate_kappa(model, batch_sizes=(4, 16))
        assert est.adapter == "pyg" and est.cutoff == 5.0 and dict(est.uncounted) == {}
    # SchNet's matmuls by hand: per edge the filter MLP (G -> F -> F), per atom and block
    # lin1 (H -> F, no bias), lin2 (F -> H), lin (H -> H), then the head H -> H/2 -> 1
    g = probe_graphs([16])[0].with_edges(5.0, max_neighbors=32)
    n, e = g.n_atoms, g.edge_index.shape[1]
    per_block = 2 * e * (gaussians * filters + filters * filters) + 2 * n * (2 * hidden * filters + hidden * hidden)
    head = 2 * n * (hidden * hidden // 2 + hidden // 2)
    rep = count_flops(lambda x: find_adapter(schnet).forward(schnet, x), find_adapter(schnet).inputs(schnet, g))
    assert rep.matmul == blocks * per_block + head


def _small_mace(z_table):
    from mace import modules  # imports e3nn with mace's torch.load setting

    from nnip_scaling.geometry._e3nn import e3nn_o3

    o3 = e3nn_o3()
    torch.manual_seed(0)
    return modules.ScaleShiftMACE(
        r_max=5.0, num_bessel=6, num_polynomial_cutoff=5, max_ell=2,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=2, num_elements=len(z_table), hidden_irreps=o3.Irreps("8x0e+8x1o"),
        MLP_irreps=o3.Irreps("8x0e"), atomic_energies=np.zeros(len(z_table)), avg_num_neighbors=8.0,
        atomic_numbers=z_table, correlation=2, gate=torch.nn.functional.silu, radial_MLP=[8, 8],
        atomic_inter_scale=1.0, atomic_inter_shift=0.0)


@pytest.mark.skipif(not _importable("mace"), reason="mace-torch is not installed (pip install mace-torch)")
def test_mace():
    z_table = sorted(set(probe_graphs([90])[0].atomic_numbers.tolist()))
    model = _small_mace(z_table)
    adapter = find_adapter(model)
    assert adapter.name == "mace"
    _energies_are_batch_consistent(model, adapter, _split(probe_graphs([3])[0]))
    est = estimate_kappa(model, batch_sizes=(4, 16))
    assert est.adapter == "mace" and est.cutoff == 5.0 and dict(est.uncounted) == {} and est.kappa > 0
    with_forces = estimate_kappa(model, batch_sizes=(4, 16), adapter=get_adapter("mace", compute_force=True))
    assert with_forces.kappa > 1.5 * est.kappa  # the autograd force pass is counted
    with pytest.raises(ValueError, match="knows the elements"):
        estimate_kappa(_small_mace([1, 6]), batch_sizes=(4,))


@pytest.mark.skipif(not _importable("fairchem.core"),
                    reason="fairchem-core is not installed: its wheels pin GPU-only packages, so it is not in "
                           "the interop extra (docs/flops.md shows a CPU install)")
def test_fairchem_esen():
    from fairchem.core.models.base import HydraModelV2
    from fairchem.core.models.uma.escn_md import Linear_Energy_Head, Linear_Force_Head, eSCNMDBackbone

    torch.manual_seed(0)
    backbone = eSCNMDBackbone(
        max_num_elements=100, sphere_channels=8, lmax=2, mmax=2, otf_graph=False, max_neighbors=30, cutoff=5.0,
        edge_channels=8, distance_function="gaussian", num_distance_basis=8, direct_forces=True,
        regress_forces=True, num_layers=2, hidden_channels=8, norm_type="rms_norm_sh", act_type="gate",
        ff_type="grid", use_dataset_embedding=False, always_use_pbc=False)
    model = HydraModelV2(backbone, {"energy": Linear_Energy_Head(backbone), "forces": Linear_Force_Head(backbone)})
    adapter = find_adapter(model)
    assert adapter.name == "fairchem" and adapter.cutoff(model) == 5.0 and adapter.max_neighbors(model) == 30
    _energies_are_batch_consistent(model, adapter, _split(probe_graphs([3])[0]))
    est = estimate_kappa(model, batch_sizes=(4, 16))
    assert est.adapter == "fairchem" and dict(est.uncounted) == {} and est.kappa > 0
    # a plain container of backbone and heads: the adapter is named explicitly
    box = nn.ModuleDict({"backbone": backbone, "heads": nn.ModuleDict({"energy": Linear_Energy_Head(backbone)})})
    assert find_adapter(box) is None
    assert estimate_kappa(box, batch_sizes=(4,), adapter="fairchem").adapter == "fairchem"


@pytest.mark.skipif(not _importable("schnetpack"),
                    reason="schnetpack does not import here: 2.0.x/2.1.x fail on torch >= 2.6 (T_co removed), "
                           "2.2 needs Python >= 3.12")
@pytest.mark.parametrize("representation", ["SchNet", "PaiNN", "SO3net"])
def test_schnetpack(representation):
    import schnetpack as spk

    torch.manual_seed(0)
    radial = spk.nn.GaussianRBF(n_rbf=8, cutoff=5.0)
    kwargs = {"n_atom_basis": 8, "n_interactions": 2, "radial_basis": radial, "cutoff_fn": spk.nn.CosineCutoff(5.0)}
    if representation == "SO3net":
        kwargs["lmax"] = 1
    rep = getattr(spk.representation, representation)(**kwargs)
    model = spk.model.NeuralNetworkPotential(representation=rep, input_modules=[spk.atomistic.PairwiseDistances()],
                                             output_modules=[spk.atomistic.Atomwise(n_in=8, output_key="energy")])
    adapter = find_adapter(model)
    assert adapter.name == "schnetpack" and adapter.cutoff(model) == 5.0
    _energies_are_batch_consistent(model, adapter, _split(probe_graphs([3])[0]))
    est = estimate_kappa(model, batch_sizes=(4, 16))
    assert est.adapter == "schnetpack" and dict(est.uncounted) == {} and est.kappa > 0
    if representation == "SchNet":
        # by hand (G = 8 Gaussians, F = H = 8): per block, the filter network on every edge
        # (G -> F -> F) and in2f (H -> F), f2out (F -> H -> H) per atom; then Atomwise's
        # pyramidal MLP 8 -> 4 -> 1 per atom
        g = probe_graphs([16])[0].with_edges(5.0)
        n, e = g.n_atoms, g.edge_index.shape[1]
        per_block = 2 * e * (8 * 8 + 8 * 8) + 2 * n * (8 * 8 + 8 * 8 + 8 * 8)
        rep_flops = count_flops(lambda x: adapter.forward(model, x), adapter.inputs(model, g))
        assert rep_flops.matmul == 2 * per_block + 2 * n * (8 * 4 + 4 * 1)
