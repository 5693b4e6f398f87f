"""Stage 1, the model: formula parsing, the model frame (rows, weights, centering, designs, nested
levels), weight rules and the random-effect covariance structure. Plain arrays out; no estimation."""
