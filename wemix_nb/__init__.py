"""wemix_nb: weighted mixed-effects models with survey weights at every level.

Multilevel pseudo-maximum likelihood for linear and generalized linear mixed models, as in the
R package WeMix, with results made for notebooks.

>>> import wemix_nb
>>> data = wemix_nb.datasets.pisa2012_like()
>>> fit = wemix_nb.mix("pv1math ~ escs + (1|schoolid)", data, weights=["w_fstuwt", "w_fschwt"])

Importing the package registers the ``DataFrame.wemix`` accessor. The notebook layer (HTML
tables, Altair charts, widgets) is imported only when it is used.
"""

from __future__ import annotations

import sys

from wemix_nb import (
    accessor,  # noqa: F401  (registers DataFrame.wemix)
    datasets,
    errors,
)
from wemix_nb.api import fit_many, likelihood, mix
from wemix_nb.distributed.dask import mix_dask
from wemix_nb.estimation import families
from wemix_nb.estimation.likelihood import LogLikelihood
from wemix_nb.results.extras import degrees_of_freedom
from wemix_nb.results.inference import WaldTest, wald_test
from wemix_nb.results.report import MixSummary
from wemix_nb.results.result import MixResult
from wemix_nb.survey.describe import WeightSummary, describe_weights
from wemix_nb.survey.pv import PVResult, combine_pv
from wemix_nb.survey.replicate_result import ReplicateResult
from wemix_nb.survey.replicates import ReplicateWeights, replicate_variance, replicate_weights
from wemix_nb.survey.scaling import scale_weights

# ``wemix_nb.families`` was a module before the stage packages; keep ``import wemix_nb.families``
# and ``from wemix_nb.families import get_family`` working without a second copy of the module
sys.modules.setdefault(f"{__name__}.families", families)

__version__ = "0.1.0"

__all__ = [
    "LogLikelihood",
    "MixResult",
    "MixSummary",
    "PVResult",
    "ReplicateResult",
    "ReplicateWeights",
    "WaldTest",
    "WeightSummary",
    "combine_pv",
    "compare",
    "datasets",
    "degrees_of_freedom",
    "describe_weights",
    "errors",
    "families",
    "fit_many",
    "likelihood",
    "mix",
    "mix_dask",
    "replicate_variance",
    "replicate_weights",
    "report",
    "scale_weights",
    "wald_test",
]


# the notebook layer is imported on first use, so `import wemix_nb` never loads great_tables,
# altair or ipywidgets
_LAZY_SUBMODULES = ("display", "widgets")


def __getattr__(name: str):
    if name == "compare":
        from wemix_nb.display.html import compare

        return compare
    if name == "report":  # report drafting lives in the notebook layer (wemix_nb.display.report)
        from wemix_nb.display.report import report

        return report
    if name == "widgets":  # one home: the notebook layer's widgets module
        import importlib

        return importlib.import_module(f"{__name__}.display.widgets")
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"compare", "report", *_LAZY_SUBMODULES})
