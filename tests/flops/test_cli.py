"""``nnip-scaling kappa``: one small width per family, checked against the library calls."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nnip_scaling.cli import main
from nnip_scaling.flops import PAPER_KAPPA, estimate_kappa, parameter_placement, probe_graphs
from nnip_scaling.models import KINDS, build_model, family_class, paper_ladder

ARGS = ["--widths", "4", "--depth", "1", "--batch-sizes", "3", "7", "--threads", "1"]


def _model(kind: str, width: int, depth: int):
    rung = paper_ladder(kind)[0]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_model(kind, width=width, depth=depth, cutoff=rung.cutoff,
                           max_neighbors=rung.max_neighbors, **dict(family_class(kind).ladder_options))


def test_kappa_table_all_families(tmp_path, capsys):
    out_json = tmp_path / "kappa.json"
    assert main(["kappa", *ARGS, "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "κ counted" in text and "κ paper" in text
    data = json.loads(out_json.read_text())
    fams = data["families"]
    assert [f["kind"] for f in fams] == list(KINDS)
    graphs = probe_graphs((3, 7))
    d = np.array([g.n_atoms for g in graphs], float)
    for f in fams:
        kind = f["kind"]
        (row,) = f["rows"]
        assert row["width"] == 4 and row["depth"] == 1 and f["probe"] == "g2"
        assert f["cutoff"] == paper_ladder(kind)[0].cutoff
        assert row["paper_kappa"] == PAPER_KAPPA[kind]
        # the paper's kappa is printed on the family's row
        assert any(line.startswith(f"| {kind} |") and f"{PAPER_KAPPA[kind]:.2f} |" in line
                   for line in text.splitlines())
        model = _model(kind, 4, 1)
        est = estimate_kappa(model, graphs)
        assert row["n_params"] == model.n_parameters
        assert row["kappa"] == pytest.approx(est.kappa, rel=1e-12)
        assert row["mean_neighbors"] == pytest.approx(est.mean_neighbors, rel=1e-12)
        preds = [parameter_placement(model, g) for g in graphs]
        c = np.array([p.flops for p in preds])
        assert row["kappa_predicted"] == pytest.approx(float(d @ c / (d @ d)) / model.n_parameters, rel=1e-9)
        assert 0 < row["kappa_predicted"] <= row["kappa"]
        cap = paper_ladder(kind)[0].max_neighbors
        assert row["kappa_predicted_at_cap"] == pytest.approx(preds[-1].kappa_at(mean_neighbors=cap), rel=1e-12)
        assert f["kappa_fit"] == pytest.approx(row["kappa"], rel=1e-9)  # one width: the same fit


def test_placement_flag_and_defaults_of_one_family(capsys):
    assert main(["kappa", "--kind", "unconstrained", *ARGS, "--placement"]) == 0
    text = capsys.readouterr().out
    assert "predicted kappa" in text and "lin_geometry" in text
    assert "| cartesian |" not in text


def test_bad_arguments(capsys):
    assert main(["kappa", "--kind", "unconstrained", "--widths", "4", "4"]) == 2
    assert "distinct" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["kappa", "--kind", "transformer"])
    with pytest.raises(SystemExit):
        main(["kappa", "--widths", "0"])
    with pytest.raises(SystemExit):
        main(["kappa", "--probe", "omol"])


def test_gfn2_probe_has_more_neighbours(tmp_path):
    try:
        probe_graphs((1,), source="gfn2")
    except FileNotFoundError as err:  # the shipped data set is not installed
        pytest.skip(str(err))
    out_json = tmp_path / "k.json"
    assert main(["kappa", "--kind", "unconstrained", "--widths", "4", "--depth", "1", "--threads", "1",
                 "--probe", "g2", "gfn2", "--batch-sizes", "3", "6", "--json", str(out_json)]) == 0
    g2, gfn2 = json.loads(out_json.read_text())["families"]
    assert (g2["probe"], gfn2["probe"]) == ("g2", "gfn2")
    assert gfn2["mean_neighbors"] > 1.5 * g2["mean_neighbors"]


def test_library_bad_input():
    from nnip_scaling.flops import family_kappa

    with pytest.raises(ValueError, match="kind"):
        family_kappa("transformer")
    with pytest.raises(ValueError, match="probe"):
        family_kappa("unconstrained", [4], probe="omol")
    with pytest.raises(ValueError, match="widths"):
        family_kappa("unconstrained", [])
    with pytest.raises(ValueError, match="source"):
        probe_graphs((3,), source="omol")
    with pytest.raises(ValueError, match="probe"):
        estimate_kappa(_model("unconstrained", 4, 1), probe="omol")


def test_gfn2_probe_batches_nested():
    try:
        a, b = probe_graphs((2, 5), source="gfn2")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    assert (a.n_graphs, b.n_graphs) == (2, 5)
    assert torch.equal(b.atomic_numbers[: a.n_atoms], a.atomic_numbers)
    assert int(b.n_atoms_per_graph.max()) <= 30
    (c,) = probe_graphs((5,), source="gfn2", seed=1)
    assert c.n_atoms != b.n_atoms or not torch.equal(c.atomic_numbers, b.atomic_numbers)
