"""Built-in example data sets.

``sleepstudy``: reaction times of 18 subjects over 10 days of sleep deprivation (Belenky et al.,
2003), as shipped with lme4: ``Reaction``, ``Days``, ``Subject``.

``pisa2012_like``: a synthetic two-stage sample shaped like the PISA 2012 U.S. data used in the
WeMix introduction vignette: 5,057 students in 150 schools, math score ``pv1math``, ``st29q03``
(enjoys math), ``sc14q02`` (lack of teachers hinders instruction), ``st04q01`` (gender), ``escs``
(socio-economic index), unconditional student weight ``w_fstuwt`` and school weight ``w_fschwt``.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

_ORDERED = {
    "st29q03": ["Strongly agree", "Agree", "Disagree", "Strongly disagree"],
    "sc14q02": ["Not at all", "A lot", "To some extent", "Very little"],
    "st04q01": ["Female", "Male"],
}


def _read(name: str) -> pd.DataFrame:
    with resources.files(__name__).joinpath(name).open("rb") as handle:
        return pd.read_csv(handle)


def sleepstudy() -> pd.DataFrame:
    """lme4's ``sleepstudy`` (180 rows); ``Subject`` is a categorical in lme4's level order."""
    data = _read("sleepstudy.csv")
    data["Subject"] = pd.Categorical(data["Subject"].astype(str))
    return data


def pisa2012_like() -> pd.DataFrame:
    """A synthetic PISA-like two-stage sample (5,057 students in 150 schools).

    The categorical columns are pandas Categoricals whose first level is the reference level used
    in the WeMix vignette.
    """
    data = _read("pisa2012_like.csv")
    for column, levels in _ORDERED.items():
        data[column] = pd.Categorical(data[column], categories=levels)
    return data


__all__ = ["pisa2012_like", "sleepstudy"]
