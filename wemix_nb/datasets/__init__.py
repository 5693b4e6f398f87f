"""Built-in example data sets.

``sleepstudy``: reaction times of 18 subjects over 10 days of sleep deprivation (Belenky et al.,
2003), as shipped with lme4: ``Reaction``, ``Days``, ``Subject``.

``pisa2012_like``: a synthetic two-stage sample shaped like the PISA 2012 U.S. data used in the
WeMix introduction vignette: 5,057 students in 150 schools, math score ``pv1math``, ``st29q03``
(enjoys math), ``sc14q02`` (lack of teachers hinders instruction), ``st04q01`` (gender), ``escs``
(socio-economic index), unconditional student weight ``w_fstuwt`` and school weight ``w_fschwt``.
With ``design=True`` it also has five plausible values ``PV1MATH``..``PV5MATH``, PISA-style
pseudo-strata ``VARSTRAT``/``VARUNIT`` and 80 Fay replicate weights ``W_FSTR1``..``W_FSTR80``.

``apiclus2``: real data from R's ``survey`` package (GPL): a two-stage cluster sample of 126
California schools in 40 school districts, with the Academic Performance Index and the design's
weights.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from wemix_nb.errors import DataError

_ORDERED = {
    "st29q03": ["Strongly agree", "Agree", "Disagree", "Strongly disagree"],
    "sc14q02": ["Not at all", "A lot", "To some extent", "Very little"],
    "st04q01": ["Female", "Male"],
}


def _read(name: str, **options) -> pd.DataFrame:
    compression = "gzip" if name.endswith(".gz") else None
    with resources.files(__name__).joinpath(name).open("rb") as handle:
        return pd.read_csv(handle, compression=compression, **options)


def sleepstudy() -> pd.DataFrame:
    """lme4's ``sleepstudy`` (180 rows); ``Subject`` is a categorical in lme4's level order."""
    data = _read("sleepstudy.csv")
    data["Subject"] = pd.Categorical(data["Subject"].astype(str))
    return data


def _design_columns(data: pd.DataFrame) -> pd.DataFrame:
    # the companion file is joined on row order; its schoolid column is there to check that order
    design = _read("pisa2012_like_design.csv.gz")
    if len(design) != len(data) or not (design["schoolid"].to_numpy() == data["schoolid"].to_numpy()).all():
        raise DataError(
            "pisa2012_like_design.csv.gz does not match pisa2012_like.csv row for row (schoolid)."
        )
    design.index = data.index
    return pd.concat([data, design.drop(columns="schoolid")], axis=1)


def pisa2012_like(design: bool = False) -> pd.DataFrame:
    """A synthetic PISA-like two-stage sample (5,057 students in 150 schools).

    The categorical columns are pandas Categoricals whose first level is the reference level used
    in the WeMix vignette.

    Parameters
    ----------
    design
        If True, add the survey-design columns (synthetic, made for this package, row for row with
        the sample):

        * ``PV1MATH``..``PV5MATH``: five exchangeable plausible values (``pv1math`` plus
          independent N(0, 30^2) measurement draws);
        * ``VARSTRAT`` / ``VARUNIT``: PISA-style pseudo-strata, the schools in ``schoolid`` order
          paired into 75 strata, unit 1 or 2 in each (so PSU labels restart within strata);
        * ``W_FSTR1``..``W_FSTR80``: Fay replicate weights with k = 0.5, ``w_fstuwt`` times 1.5 or
          0.5 by a Hadamard matrix of order 80 (Paley's, strata on its columns 1..75), constant
          within each school. Sampling variance: ``sum_r (theta_r - theta)^2 / 20``.
          ``replicate_weights(data, "w_fstuwt", "fay", strata="VARSTRAT", psu="VARUNIT",
          nest=True, prefix="W_FSTR")`` rebuilds them.
    """
    data = _read("pisa2012_like.csv")
    for column, levels in _ORDERED.items():
        data[column] = pd.Categorical(data[column], categories=levels)
    return _design_columns(data) if design else data


def apiclus2() -> pd.DataFrame:
    """California schools, two-stage cluster sample (R ``survey``'s ``apiclus2``; real data, GPL).

    40 of California's 757 school districts were sampled, then up to 5 schools in each: 126 schools
    with their Academic Performance Index (API) for 2000.

    Returns
    -------
    pandas.DataFrame
        One row per school, with the columns listed below.

    Notes
    -----
    The columns:

    ``cds``
        School code (string).
    ``dnum``, ``snum``
        District and school numbers.
    ``api00``, ``api99``
        API score in 2000 and 1999.
    ``ell``
        Percentage of English-language learners.
    ``meals``
        Percentage of students eligible for subsidised meals.
    ``mobility``
        Percentage of students new to the school.
    ``enroll``
        Enrolment (missing for 6 schools).
    ``stype``
        School type, a Categorical: ``E`` elementary, ``M`` middle, ``H`` high.
    ``schwide``
        1 if the school met its school-wide growth target.
    ``fpc1``, ``fpc2``
        Population sizes: 757 districts; schools in the district.
    ``pw``
        Overall sampling weight.
    ``n_i``
        Schools sampled in the district.
    ``w2``
        District (level-2) weight, unconditional: 757 / 40.
    ``w1``
        School (level-1) weight, unconditional: ``pw``.
    ``w1c``
        School weight conditional on its district: ``fpc2 / n_i``.

    For a two-level model of schools in districts use ``weights=["w1", "w2"]`` (or
    ``["w1c", "w2"]`` with ``cweights=True``).
    """
    data = _read("apiclus2.csv", dtype={"cds": str})
    data["stype"] = pd.Categorical(data["stype"], categories=["E", "M", "H"])
    return data


__all__ = ["apiclus2", "pisa2012_like", "sleepstudy"]
