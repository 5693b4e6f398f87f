"""Loading R WeMix reference fits from ../shared/reference and mapping R names to ours."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEMIX_R = SHARED / "reference" / "wemix-r"
VIGNETTE = SHARED / "reference" / "vignette-pisa-like"
REALDATA = SHARED / "reference" / "realdata"
WEMIX_REFERENCE = SHARED / "docs" / "wemix-reference"


def require_shared() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"the shared reference folder {SHARED} is not present")


def typed_frame(data: pd.DataFrame, column_types: dict) -> pd.DataFrame:
    """Apply R's column types: factors become Categoricals with R's level order."""
    data = data.copy()
    for column, spec in column_types.items():
        if spec.get("type") == "factor":
            levels = [str(level) for level in spec["levels"]]
            data[column] = pd.Categorical(data[column].astype(str), categories=levels)
    return data


@cache
def _load_json(path: Path) -> dict:
    return json.loads(path.read_text())


def wemix_case(name: str) -> tuple[pd.DataFrame, dict]:
    """``data.csv`` (typed) and ``expected.json`` of a ``reference/wemix-r`` case."""
    require_shared()
    folder = WEMIX_R / name
    expected = _load_json(folder / "expected.json")
    data = typed_frame(pd.read_csv(folder / "data.csv"), expected["column_types"])
    return data, expected


def realdata_case(name: str) -> tuple[pd.DataFrame, dict]:
    """``data.csv`` (typed) and ``expected.json`` of a ``reference/realdata`` case (R1_api_ri...)."""
    require_shared()
    folder = REALDATA / name
    expected = _load_json(folder / "expected.json")
    data = pd.read_csv(folder / "data.csv", dtype={"cds": str})
    return typed_frame(data, expected["column_types"]), expected


def vignette_case(name: str) -> tuple[pd.DataFrame, dict]:
    """Data and expected numbers of a ``reference/vignette-pisa-like`` case (m1u, m1c, m2, b1)."""
    require_shared()
    folder = VIGNETTE / f"pisa_like_{name}"
    expected = _load_json(folder / "expected.json")
    data = typed_frame(pd.read_csv(folder / "data.csv"), expected.get("column_types", {}))
    return data, expected


def wemix_reference_case(name: str) -> tuple[pd.DataFrame, dict]:
    """The ``docs/wemix-reference`` data and the expected outputs of model ``name`` (L1, G4...)."""
    require_shared()
    expected = _load_json(WEMIX_REFERENCE / "expected_outputs.json")[name]
    data = pd.read_csv(WEMIX_REFERENCE / "wemix_ref_data.csv")
    return data, expected


def r_name(name: str) -> str:
    """Our coefficient / variance name in R's spelling: ``x2[T.b]`` -> ``x2b``, ``Intercept`` ->
    ``(Intercept)``."""
    name = re.sub(r"\[T\.(.*?)\]", r"\1", name)
    return re.sub(r"(^|(?<=[.:]))Intercept($|(?=[.:]))", "(Intercept)", name)


def by_r_name(series: pd.Series) -> dict:
    return {r_name(str(k)): float(v) for k, v in series.items()}


def r_center_group(expression: str | None) -> dict | None:
    """``list("school"=~x1)`` -> ``{"school": "~x1"}``."""
    if not expression:
        return None
    return dict(re.findall(r'"([\w.:/]+)"\s*=\s*(~[^,)]+)', expression))


def pisa_with_plausible_values(count: int, seed: int, noise_sd: float = 20.0) -> pd.DataFrame:
    """pisa2012_like with pv2math .. pv<count>math = pv1math + N(0, noise_sd^2) noise (seeded)."""
    import numpy as np

    import wemix_nb

    data = wemix_nb.datasets.pisa2012_like()
    rng = np.random.default_rng(seed)
    for k in range(2, count + 1):
        data[f"pv{k}math"] = data["pv1math"] + rng.normal(0.0, noise_sd, len(data))
    return data
