"""The bad inputs of survey inference in ``mix()`` (docs/errors.md, "Survey inference in mix()"):
replicate weights, plausible values x replicates, the sampling design of the sandwich, and the
weight-order warning. Each documented row runs here; the table and the cases stay in step."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import wemix_nb
from wemix_nb import errors as E

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
SECTION = "## Survey inference in mix()"
F = "Reaction ~ Days + (1|Subject)"
W = ["W1", "W2"]


def sleep() -> pd.DataFrame:
    """sleepstudy with unit weights, Fay-like replicates R1..R4 (constant within subjects), pseudo
    strata S (two subjects each) with PSUs P = 1, 2, and an fpc of 20 PSUs per stratum."""
    d = wemix_nb.datasets.sleepstudy()
    code = d["Subject"].cat.codes.to_numpy()
    d = d.assign(W1=1.0, W2=1.0, S=code // 2, P=code % 2 + 1, N=20.0)
    for r in range(1, 5):
        d[f"R{r}"] = np.where((code + r) % 2 == 0, 1.5, 0.5)
    return d


def where(d: pd.DataFrame, mask, value, column: str) -> pd.DataFrame:
    d = d.copy()
    d[column] = np.where(mask, value, d[column])
    return d


def rep(**kwargs):
    kwargs.setdefault("replicate_weights", "R{1..4}")
    kwargs.setdefault("replicate_method", "fay")
    data = kwargs.pop("data", None)
    return wemix_nb.mix(F, sleep() if data is None else data, W, **kwargs)


ROW3 = np.arange(180) == 3

# id -> (call, exception type, substrings the message must contain)
ERRORS = {
    "survey-replicate-column-missing": (
        lambda: rep(replicate_weights="R{1..5}"),
        E.ColumnNotFoundError,
        ["Replicate weight column", "'R5'", "not in the data"],
    ),
    "survey-replicate-not-numeric": (
        lambda: rep(data=sleep().assign(R2="a")),
        E.WeightError,
        ["'R2'", "numeric"],
    ),
    "survey-replicate-negative": (
        lambda: rep(data=where(sleep(), ROW3, -1.0, "R2")),
        E.WeightError,
        ["'R2'", "negative", "1 row(s)", "row 3"],
    ),
    "survey-replicate-missing-values": (
        lambda: rep(data=where(sleep(), ROW3, np.nan, "R3")),
        E.WeightError,
        ["'R3'", "missing values", "row 3"],
    ),
    "survey-replicate-all-zero": (
        lambda: rep(data=sleep().assign(R4=0.0)),
        E.WeightError,
        ["'R4'", "zero on every row"],
    ),
    "survey-too-few-replicates": (
        lambda: rep(replicate_weights=["R1"]),
        E.ArgumentError,
        ["1 column(s)", "at least 2 replicates"],
    ),
    "survey-replicate-pattern-one-column": (
        lambda: rep(replicate_weights="R1"),
        E.ArgumentError,
        ["'R1'", "single column", "{1..80}"],
    ),
    "survey-fay-k-range": (lambda: rep(fay_k=1.0), E.ArgumentError, ["fay_k", "[0, 1)", "1.0"]),
    "survey-fay-k-other-method": (
        lambda: rep(replicate_method="jk1", fay_k=0.3),
        E.ArgumentError,
        ["fay_k", "'jk1'"],
    ),
    "survey-replicate-method-missing": (
        lambda: rep(replicate_method=None),
        E.ArgumentError,
        ["replicate_method", "'fay'", "replicate_scale"],
    ),
    "survey-replicate-method-unknown": (
        lambda: rep(replicate_method="sdr"),
        E.ArgumentError,
        ["replicate_method", "'sdr'"],
    ),
    "survey-jkn-without-multipliers": (
        lambda: rep(replicate_method="jkn"),
        E.ArgumentError,
        ["'jkn'", "replicate_scale", "ReplicateWeights"],
    ),
    "survey-replicate-scale-length": (
        lambda: rep(replicate_scale=[0.1, 0.2]),
        E.ArgumentError,
        ["replicate_scale", "4 finite non-negative", "got 2"],
    ),
    "survey-replicate-options-without-replicates": (
        lambda: wemix_nb.mix(F, sleep(), W, replicate_method="fay"),
        E.ArgumentError,
        ["replicate_method", "need(s) replicate_weights"],
    ),
    "survey-factor-varies": (
        lambda: rep(data=where(sleep(), ROW3, 0.7, "R2")),
        E.WeightError,
        ["'R2'", "'W1'", "varies within group '308'", "'Subject'", "replicate_weights={1:"],
    ),
    "survey-replicate-level-not-in-model": (
        lambda: rep(replicate_weights={1: "R{1..4}", 3: "R{1..4}"}),
        E.WeightError,
        ["level 3", "2 levels"],
    ),
    "survey-replicate-dict-without-level-1": (
        lambda: rep(replicate_weights={2: "R{1..4}"}),
        E.ArgumentError,
        ["key 1"],
    ),
    "survey-replicate-dict-counts": (
        lambda: rep(replicate_weights={1: "R{1..4}", 2: "R{1..3}"}),
        E.ArgumentError,
        ["level 1: 4", "level 2: 3"],
    ),
    "survey-replicate-object-and-method": (
        lambda: rep(
            replicate_weights=wemix_nb.replicate_weights(sleep(), "W1", "jk1", psu="Subject"),
            replicate_method="jk1",
        ),
        E.ArgumentError,
        ["come with the ReplicateWeights"],
    ),
    "survey-pv-sampling": (lambda: rep(pv_sampling="last"), E.ArgumentError, ["pv_sampling", "'last'"]),
    "survey-design-column-missing": (
        lambda: wemix_nb.mix(F, sleep(), W, strata="Region"),
        E.ColumnNotFoundError,
        ["'Region'"],
    ),
    "survey-strata-missing-values": (
        lambda: wemix_nb.mix(F, where(sleep(), ROW3, np.nan, "S"), W, strata="S"),
        E.DesignError,
        ["stratum column 'S'", "missing values", "row 3"],
    ),
    "survey-psu-missing-values": (
        lambda: wemix_nb.mix(F, where(sleep(), ROW3, np.nan, "P"), W, strata="S", psu="P", nest=True),
        E.DesignError,
        ["PSU column 'P'", "missing values", "row 3"],
    ),
    "survey-psu-not-nested": (
        lambda: wemix_nb.mix(F, sleep(), W, strata="S", psu="P"),
        E.DesignError,
        ["PSU 1 of 'P'", "more than one stratum of 'S'", "nest=True"],
    ),
    "survey-psu-splits-top-group": (
        lambda: wemix_nb.mix(F, sleep().assign(P=lambda d: d.Days % 2), W, psu="P"),
        E.DesignError,
        ["of 'Subject' (the top level)", "more than one PSU of 'P'", "whole top-level groups"],
    ),
    "survey-single-psu-stratum": (
        lambda: wemix_nb.mix(F, where(sleep(), sleep().Subject.astype(str) == "308", 99, "S"), W, strata="S"),
        E.DesignError,
        ["Stratum 0 of 'S'", "single PSU (2 of the 10 strata do)", "lonely_psu='adjust'"],
    ),
    "survey-fpc-varies": (
        lambda: wemix_nb.mix(F, where(sleep(), ROW3, 30.0, "N"), W, strata="S", fpc="N"),
        E.DesignError,
        ["fpc column 'N'", "varies within stratum 0"],
    ),
    "survey-fpc-below-sample": (
        lambda: wemix_nb.mix(F, sleep().assign(N=1.5), W, strata="S", fpc="N"),
        E.DesignError,
        ["population of 1.5 PSUs", "2 PSUs in the sample"],
    ),
    "survey-nest-without-strata": (
        lambda: wemix_nb.mix(F, sleep(), W, psu="P", nest=True),
        E.ArgumentError,
        ["nest=True", "strata= and psu="],
    ),
    "survey-lonely-psu-value": (
        lambda: wemix_nb.mix(F, sleep(), W, strata="S", lonely_psu="average"),
        E.ArgumentError,
        ["lonely_psu", "'average'"],
    ),
    "survey-data-index-repeats": (
        lambda: rep(data=sleep().set_axis(np.zeros(180, dtype=int))),
        E.ArgumentError,
        ["index repeats", "reset_index"],
    ),
}

# id -> (call, warning type, substrings); the fit goes ahead
WARNINGS = {
    "survey-weights-look-conditional": (
        lambda: wemix_nb.mix(F, sleep().assign(W2=5.0, W1=lambda d: 1.0 + d.Days), W),
        E.WeightWarning,
        ["72 row(s)", "'W1' below the level-2 weight 'W2'", "cweights=True"],
    ),
}

# id -> call; fits without error or warning
FINE = {
    "level1-weights-only": lambda: wemix_nb.mix(F, sleep().assign(W1=lambda d: 1.0 + d.Days), ["W1"]),
    "lonely-psu-adjust": lambda: wemix_nb.mix(
        F, where(sleep(), sleep().Subject.astype(str) == "308", 99, "S"), W, strata="S", lonely_psu="adjust"
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_error(case):
    call, kind, parts = ERRORS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.DroppedRowsWarning)
        with pytest.raises(kind) as info:
            call()
    message = str(info.value)
    for part in parts:
        assert part in message, f"{case}: {part!r} not in {message!r}"
    assert isinstance(info.value, E.WemixError)


@pytest.mark.parametrize("case", list(WARNINGS))
def test_warning(case):
    call, kind, parts = WARNINGS[case]
    with pytest.warns(kind) as record:
        call()
    message = " ".join(str(w.message) for w in record if issubclass(w.category, kind))
    for part in parts:
        assert part in message, f"{case}: {part!r} not in {message!r}"


@pytest.mark.parametrize("case", list(FINE))
def test_fine(case):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", E.FewGroupsWarning)  # the sleepstudy's 18 subjects
        fit = FINE[case]()
    assert np.isfinite(fit.SE).all()


def test_every_documented_row_is_tested():
    section = DOC.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\|[^|\n]*\|\s*`([a-z0-9-]+)`\s*\|", section, flags=re.M)
    assert len(documented) == len(set(documented))
    assert set(documented) == set(ERRORS) | set(WARNINGS) | set(FINE)
