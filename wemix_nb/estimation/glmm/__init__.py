"""Weighted GLMMs by adaptive Gauss-Hermite quadrature (two and three levels)."""

from wemix_nb.estimation.glmm.core import GlmmFit, GlmmLevelModes, fit_glmm

__all__ = ["GlmmFit", "GlmmLevelModes", "fit_glmm"]
