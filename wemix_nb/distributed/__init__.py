"""Many fits at once (local processes, Dask) and linear models of Dask DataFrames."""
