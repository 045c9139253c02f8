# Shape checks shared by the kernel entry points (included, not imported, so
# they cost a C call).  Kernels run with bounds checks off: a wrong shape here
# must raise, never reach the loops.

cdef inline int check_shape2(str name, Py_ssize_t r, Py_ssize_t c, Py_ssize_t er,
                             Py_ssize_t ec) except -1:
    if r != er or c != ec:
        raise ValueError(f"{name} has shape ({r}, {c}), expected ({er}, {ec})")
    return 0


cdef inline int check_len(str name, Py_ssize_t n, Py_ssize_t en) except -1:
    if n != en:
        raise ValueError(f"{name} has length {n}, expected {en}")
    return 0


cdef inline int check_gemm_rows(str name, Py_ssize_t rows) except -1:
    # BLAS takes 32-bit dimensions: a GEMM over more rows would be truncated
    if rows > 2147483647:
        raise ValueError(f"{name} has {rows} rows; one BLAS call takes at most 2^31 - 1 "
                         f"(32-bit dimensions): split the batch")
    return 0
