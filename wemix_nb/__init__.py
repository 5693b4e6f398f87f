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

from . import (
    accessor,  # noqa: F401  (registers DataFrame.wemix)
    datasets,
    errors,
    families,
)
from ._api import mix
from .extras import degrees_of_freedom
from .inference import WaldTest, wald_test
from .large import mix_dask
from .parallel import fit_many
from .pv import PVResult
from .results import MixResult
from .scaling import scale_weights

__version__ = "0.1.0"

__all__ = ["MixResult", "WaldTest", "datasets", "errors", "families", "mix", "wald_test"]
__all__ += ["PVResult", "degrees_of_freedom", "fit_many", "mix_dask", "scale_weights"]


# the notebook layer is imported on first use, so `import wemix_nb` never loads great_tables,
# altair or ipywidgets
_LAZY_SUBMODULES = ("display", "widgets")


def __getattr__(name: str):
    if name == "compare":
        from .display.html import compare

        return compare
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"compare", *_LAZY_SUBMODULES})
