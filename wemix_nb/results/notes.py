"""How a result's standard errors and weights were obtained, in words: the notes that the summary,
``tidy()`` and the HTML report add (:func:`se_method`, :func:`weights_note`), and the survey
arguments of the call's text."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from wemix_nb.results.result import MixResult


def _columns_text(names: list[str]) -> str:
    return repr(names) if len(names) <= 3 else f"[{names[0]!r}, ..., {names[-1]!r}]"


def survey_arguments(opts) -> list[str]:
    """The replicate-weight and sampling-design arguments of a call, as text."""
    parts = []
    replicates = opts.get("replicate_weights")
    if isinstance(replicates, dict):
        parts.append(
            "replicate_weights={"
            + ", ".join(f"{lv}: {_columns_text(c)}" for lv, c in replicates.items())
            + "}"
        )
    elif replicates is not None:
        parts.append(f"replicate_weights={_columns_text(replicates)}")
    for key in ("replicate_method", "fay_k", "pv_sampling", "strata", "psu", "fpc", "nest", "lonely_psu"):
        if opts.get(key) is not None:
            parts.append(f"{key}={opts[key]!r}")
    if opts.get("mse") is False:
        parts.append("mse=False")
    return parts


def se_method(result: MixResult) -> str:
    """How the result's standard errors were computed, in one sentence (the summary, ``tidy()``'s
    ``attrs["se_method"]`` and the HTML report's note all show it).

    Examples: ``"Robust (sandwich) standard errors, clustered on the top level (schoolid)"``;
    ``"Design-based (linearized) sandwich standard errors: 75 strata ('VARSTRAT'), 150 PSUs
    ('VARUNIT')"``; ``"Replicate-weight standard errors: Fay's BRR replicates (R = 80, k = 0.5)"``.
    """
    options = result.options
    replicates = getattr(options, "replicates", None)
    frame = result.frame
    n_pv = len(getattr(result, "fits", None) or [])
    if replicates is not None:
        text = f"Replicate-weight standard errors: {replicates.describe()}"
        if n_pv:
            sampling = "first plausible value" if replicates.pv_sampling == "first" else "mean over them"
            text += f"; {n_pv} plausible values by Rubin's rules (sampling variance: {sampling})"
        return text
    design = None if frame is None else frame.sampling
    if design is not None:
        text = f"Design-based (linearized) sandwich standard errors: {design.describe()}"
    else:
        top = str(result.ngroups.index[-1]) if len(result.ngroups) > 1 else "rows"
        text = f"Robust (sandwich) standard errors, clustered on the top level ({top})"
    if n_pv:
        text += f"; {n_pv} plausible values by Rubin's rules"
    return text


def weights_note(result: MixResult) -> str | None:
    """A sentence on the weights when they are not one column per level (``None`` otherwise)."""
    frame = result.frame
    if frame is not None and frame.level1_weights_only:
        return (
            f"Weights: level 1 only ({frame.weight_columns[0]!r}); every higher level has weight 1 "
            "(lme4's meaning of weights)."
        )
    return None


def summary_notes(result: MixResult) -> tuple[str, ...]:
    """The SE method unless it is WeMix's (clustered sandwich of one fit), and the weights note."""
    method = se_method(result)
    notes = [] if method.startswith("Robust (sandwich)") and ";" not in method else [f"{method}."]
    weights = weights_note(result)
    return tuple(notes + ([weights] if weights else []))
