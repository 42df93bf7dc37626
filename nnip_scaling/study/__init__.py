r"""The one-command scaling study (``nnip-scaling study``): model ladders -> training runs -> scaling-law
fits with sanity gates -> report (paper sections 3-4, on a CPU budget).

.. code-block:: python

    from nnip_scaling.study import default_config, run_study

    result = run_study(default_config(quick=True), "study/", workers=2)
    result.fits["spherical"].sum_law.alpha, result.fits["spherical"].failed_gates

Modules, in the order data flows through them: :mod:`~nnip_scaling.study.config` (settings and TOML),
:mod:`~nnip_scaling.study.plan` (runs and token budgets, ``plan.json``), :mod:`~nnip_scaling.study.execute`
(in-process, worker processes, SLURM via submitit; resume), :mod:`~nnip_scaling.study.analyse`
(:func:`~nnip_scaling.scaling.analyse_runs` with the study's settings), :mod:`~nnip_scaling.study.report`
and :mod:`~nnip_scaling.study.figures`, all driven by :func:`run_study` (:mod:`~nnip_scaling.study.run`).
"""

from nnip_scaling.study.config import FamilySpec, StudyConfig, config_to_toml, default_config, load_config
from nnip_scaling.study.report import PAPER_GAMMA_C, parse_exponent_table
from nnip_scaling.study.run import StudyResult, run_study

__all__ = [
    "PAPER_GAMMA_C",
    "FamilySpec",
    "StudyConfig",
    "StudyResult",
    "config_to_toml",
    "default_config",
    "load_config",
    "parse_exponent_table",
    "run_study",
]
