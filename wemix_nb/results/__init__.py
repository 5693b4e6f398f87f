"""Stage 3, results: the result object, the one path that assembles it from an estimator's solution,
text reports and tidy tables, Wald tests, R^2 and degrees of freedom."""

from wemix_nb.results.result import MixResult

__all__ = ["MixResult"]
