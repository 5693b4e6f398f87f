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

from . import datasets, errors
from ._api import mix
from .inference import WaldTest, wald_test
from .results import MixResult

__version__ = "0.1.0"

__all__ = ["MixResult", "WaldTest", "datasets", "errors", "mix", "wald_test"]
