/*
 * Control of the BLAS library's own thread pool.
 *
 * fastmlp runs its GEMMs on its own OpenMP threads, one single-threaded BLAS
 * call per thread on its block of rows or columns (see fastmlp/_kernels/plan.pyx).
 * The BLAS must then not start threads of its own: an OpenBLAS pool spinning
 * next to OpenMP's on the same cores makes a step 10-30x slower (OpenBLAS
 * issue #3187).  The BLAS the kernels call (scipy-openblas32's OpenBLAS, or
 * the one behind scipy.linalg.cython_blas; see fastmlp/_kernels/_blas_lib.py)
 * is located from the address of its sgemm (dladdr) and its OpenBLAS
 * thread-count setters are looked up in that same library, so another BLAS
 * loaded in the process (NumPy's own OpenBLAS, MKL from torch, ...) is left
 * alone.
 */
#ifndef FASTMLP_BLAS_THREADS_H
#define FASTMLP_BLAS_THREADS_H

#if defined(__unix__) || defined(__APPLE__)
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#define FM_HAVE_DLADDR 1
#endif
#include <stddef.h>

typedef void (*fm_set_threads_fn)(int);
typedef int (*fm_get_threads_fn)(void);

static fm_set_threads_fn fm_blas_set_threads_ptr = NULL;
static fm_get_threads_fn fm_blas_get_threads_ptr = NULL;

/* Find the thread-count functions of the library that holds `blas_symbol`.
 * Returns 1 when found, 0 otherwise (then the BLAS is left as it is). */
static int fm_blas_threads_init(void *blas_symbol)
{
#ifdef FM_HAVE_DLADDR
    static const char *const setters[] = {"scipy_openblas_set_num_threads64_",
                                          "scipy_openblas_set_num_threads",
                                          "openblas_set_num_threads64_",
                                          "openblas_set_num_threads", NULL};
    static const char *const getters[] = {"scipy_openblas_get_num_threads64_",
                                          "scipy_openblas_get_num_threads",
                                          "openblas_get_num_threads64_",
                                          "openblas_get_num_threads", NULL};
    Dl_info info;
    if (!blas_symbol || !dladdr(blas_symbol, &info) || !info.dli_fname) return 0;
    void *lib = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
    if (!lib) return 0;
    for (int i = 0; setters[i]; i++) {
        void *s = dlsym(lib, setters[i]);
        void *g = dlsym(lib, getters[i]);
        if (s && g) {
            fm_blas_set_threads_ptr = (fm_set_threads_fn)s;
            fm_blas_get_threads_ptr = (fm_get_threads_fn)g;
            return 1;  /* the handle stays open: the library is in use anyway */
        }
    }
    dlclose(lib);
#else
    (void)blas_symbol;
#endif
    return 0;
}

/* File name of the shared library that holds `blas_symbol`, or NULL. */
static const char *fm_blas_library_of(void *blas_symbol)
{
#ifdef FM_HAVE_DLADDR
    Dl_info info;
    if (blas_symbol && dladdr(blas_symbol, &info)) return info.dli_fname;
#else
    (void)blas_symbol;
#endif
    return NULL;
}

/* Native calls may overlap (several Python threads predicting at once), so the
 * BLAS is made single-threaded by the first one to enter and restored by the
 * last one to leave. */
static int fm_blas_depth = 0;
static int fm_blas_saved_threads = 0;

static void fm_blas_enter_single(void)
{
    if (!fm_blas_get_threads_ptr) return;
    if (__atomic_fetch_add(&fm_blas_depth, 1, __ATOMIC_ACQ_REL) == 0) {
        int previous = fm_blas_get_threads_ptr();
        __atomic_store_n(&fm_blas_saved_threads, previous, __ATOMIC_RELEASE);
        if (previous != 1) fm_blas_set_threads_ptr(1);
    }
}

static void fm_blas_leave_single(void)
{
    if (!fm_blas_set_threads_ptr) return;
    if (__atomic_fetch_sub(&fm_blas_depth, 1, __ATOMIC_ACQ_REL) == 1) {
        int previous = __atomic_load_n(&fm_blas_saved_threads, __ATOMIC_ACQUIRE);
        if (previous > 1) fm_blas_set_threads_ptr(previous);
    }
}

#endif /* FASTMLP_BLAS_THREADS_H */
