"""Stage 2, estimation: the linear estimator (profiled likelihood by nested block elimination) and
GLMMs by adaptive Gauss-Hermite quadrature, with their robust covariances. Works on a model frame;
knows nothing of result objects or presentation."""
