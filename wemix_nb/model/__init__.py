"""Stage 1, the model: from a formula, a DataFrame and weight columns to plain arrays; no estimation.

``formula`` parses lme4-style formulas; ``levels`` indexes the grouping factors and checks their
nesting; ``weights`` holds the rules for survey weights (validation, conditional and unconditional
weights, constancy within groups, scaling within clusters); ``centering`` centres covariates;
``design`` builds the response and the design matrices; ``frame`` runs these stages into a
``ModelFrame``; ``covariance`` describes the random-effect covariance parameters.
"""
