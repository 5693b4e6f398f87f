"""Exceptions and warnings raised by wemix_nb.

Every error names what is wrong: the column, the level, the group. All errors derive from
:class:`WemixError`, and each also derives from the built-in exception a Python user would
expect (``ValueError``, ``KeyError``...), so generic ``except`` clauses keep working.
"""

from __future__ import annotations


class WemixError(Exception):
    """Base class of every error raised by wemix_nb."""


class FormulaError(WemixError, ValueError):
    """The model formula cannot be parsed or refers to something unusable."""


class ColumnNotFoundError(WemixError, KeyError):
    """A column named in the formula, the weights or the centering is not in the data."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class WeightError(WemixError, ValueError):
    """A weight column is unusable (not numeric, negative, infinite, varying within a group...)."""


class NestingError(WemixError, ValueError):
    """The grouping factors are not strictly nested."""


class DataError(WemixError, ValueError):
    """The data cannot identify the model (constant outcome, empty data, bad response values...)."""


class RankDeficiencyError(DataError):
    """A fixed-effect (or random-effect) design matrix is rank deficient."""


class FamilyError(WemixError, ValueError):
    """Unknown family or link, or an option the family does not support."""


class DesignError(WemixError, ValueError):
    """The survey design variables cannot define replicates (missing strata or PSU labels, PSUs in
    two strata, a stratum with too few PSUs, a jackknife zone with one half...)."""


class ArgumentError(WemixError, ValueError):
    """An argument of a public function has an invalid value."""


class CoefficientNotFoundError(WemixError, KeyError):
    """A Wald test or prediction names a coefficient that the model does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NewLevelError(WemixError, ValueError):
    """``predict`` met group labels not seen in the fit (and ``allow_new_levels`` is False)."""


class ReportError(WemixError, ValueError):
    """Fits that cannot be reported together (their coefficients are on different scales)."""


class ReportWriteError(WemixError, OSError):
    """A report cannot be written where it was asked to be (a missing folder, a folder in the way,
    no permission)."""


def user_stacklevel() -> int:
    """The ``stacklevel`` of :func:`warnings.warn` that points at the first caller outside
    wemix_nb (and the ``contextlib`` wrappers it uses), whatever the path through the package."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__))
    skip = (
        package,
        os.path.dirname(os.path.abspath(__import__("contextlib").__file__)) + os.sep + "contextlib",
    )
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(skip):
        frame, level = frame.f_back, level + 1
    return level


class WemixWarning(UserWarning):
    """Base class of wemix_nb's warnings."""


class DroppedRowsWarning(WemixWarning):
    """Rows were removed before fitting (missing values, zero weights)."""


class ConvergenceWarning(WemixWarning):
    """The optimiser stopped before meeting its convergence criterion."""


class NumericalWarning(WemixWarning):
    """A numerical step was approximate (e.g. a Hessian that had to be made positive definite)."""


class SingularFitWarning(WemixWarning):
    """A boundary (singular) fit: a random-effect variance numerically zero or a correlation at
    +/-1 (lme4's ``isSingular``); see ``MixResult.diagnostics``."""


class FewGroupsWarning(WemixWarning):
    """The robust standard errors rest on fewer than 30 top-level groups (design-based ones: on
    fewer than 30 PSUs - strata); p-values use a t reference by default (see
    ``MixResult.diagnostics``)."""


class WeightWarning(WemixWarning):
    """The weights look inconsistent with their stated convention (e.g. unconditional level-1
    weights below the level-2 weight of their group, which implies a conditional weight below 1)."""


__all__ = [
    "ArgumentError",
    "CoefficientNotFoundError",
    "ColumnNotFoundError",
    "ConvergenceWarning",
    "DataError",
    "DesignError",
    "DroppedRowsWarning",
    "FamilyError",
    "FewGroupsWarning",
    "FormulaError",
    "NestingError",
    "NewLevelError",
    "NumericalWarning",
    "RankDeficiencyError",
    "ReportError",
    "ReportWriteError",
    "SingularFitWarning",
    "WeightError",
    "WeightWarning",
    "WemixError",
    "WemixWarning",
]
