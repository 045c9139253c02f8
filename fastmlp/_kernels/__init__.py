"""Private native kernels of fastmlp (Cython + OpenMP + BLAS). Users import fastmlp."""
