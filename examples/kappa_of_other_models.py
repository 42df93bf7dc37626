"""κ (forward FLOPs per parameter per atom) of models from other packages, beside ours.

Counts, on the built-in probe molecules, with edges built at each model's own cutoff outside the
count (docs/flops.md, "Models of other packages"):

1. a model of your own that takes ``(z, pos, batch, edge_index)``, through a ``CallableAdapter``;
2. a custom module of our blocks without a config, with ``cutoff=`` (without it, the error says so);
3. PyTorch Geometric's SchNet at two widths, if torch-geometric is installed (``pip install ".[interop]"``),
   its adapter found from the model's package; MACE likewise with ``pip install ".[mace]"``.
"""

import os

import torch
from torch import nn

from nnip_scaling.flops import estimate_kappa
from nnip_scaling.flops.adapters import CallableAdapter
from nnip_scaling.nn import MissingEdgesError, UnconstrainedBlock

torch.manual_seed(0)
FAST = os.environ.get("NNIP_FAST") == "1"
BATCHES = (4, 16) if FAST else (8, 32, 90)


class FilterNet(nn.Module):
    """SchNet-style: a filter MLP on Gaussian-expanded distances per edge, sum over neighbours."""

    def __init__(self, width: int = 32, gaussians: int = 16, cutoff: float = 5.0):
        super().__init__()
        self.embed = nn.Embedding(100, width)
        self.register_buffer("centers", torch.linspace(0.0, cutoff, gaussians))
        self.filter = nn.Sequential(nn.Linear(gaussians, width), nn.SiLU(), nn.Linear(width, width))
        self.out = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))

    def forward(self, z, pos, batch, edge_index):
        src, dst = edge_index
        d = (pos[src] - pos[dst]).norm(dim=-1)
        w = self.filter(torch.exp(-(d[:, None] - self.centers) ** 2))
        h = self.embed(z)
        h = h + torch.zeros_like(h).index_add_(0, dst, h[src] * w)
        return torch.zeros(int(batch.max()) + 1).index_add_(0, batch, self.out(h).squeeze(-1))


adapter = CallableAdapter(lambda g: (g.atomic_numbers, g.positions, g.batch, g.edge_index), cutoff=5.0)
est = estimate_kappa(FilterNet(), batch_sizes=BATCHES, adapter=adapter)
print("1. FilterNet through a CallableAdapter")
print(est.table())


class OwnBlocks(nn.Module):
    def __init__(self, width: int = 32):
        super().__init__()
        self.embed = nn.Embedding(100, width)
        self.block = UnconstrainedBlock(width, cutoff=5.0)
        self.out = nn.Linear(width, 1)

    def forward(self, g):
        return self.out(self.block(self.embed(g.atomic_numbers), g.edge_index, g.edge_vec)).sum()


try:
    estimate_kappa(OwnBlocks(), batch_sizes=BATCHES)
except MissingEdgesError as err:
    print("\n2. without cutoff=:", str(err).split(" (")[0])
est = estimate_kappa(OwnBlocks(), batch_sizes=BATCHES, cutoff=5.0, max_neighbors=30)
print(f"   with cutoff=5.0: kappa = {est.kappa:.2f} FLOPs per parameter per atom, "
      f"{est.mean_neighbors:.1f} neighbours per atom")

try:
    from torch_geometric.nn.models import SchNet
except ImportError:
    print("\n3. torch-geometric is not installed: pip install '.[interop]' to count PyG's SchNet")
else:
    est = estimate_kappa(lambda w: SchNet(hidden_channels=w, num_filters=w, num_interactions=3),
                         widths=[32, 64], batch_sizes=BATCHES, drift_tolerance=1.0)
    print(f"\n3. PyG SchNet (adapter {est.adapter!r}, edges at {est.cutoff} Å)")
    print(est.table())
