# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled train step: forward, loss, backward and update in one native call.

Design
------
A Plan holds raw pointers to the model's flat parameter, gradient and
optimizer-state buffers (each layer's W and b are views into them) and to
per-layer activation buffers allocated once for the largest batch seen.  A
step never allocates and never returns to Python between layers.

Threads (one OpenMP pool; the BLAS is kept single-threaded, see _runtime.pyx)
get static shares, and the step is L + 2 parallel regions for L layers:

  region 0      each thread, on its rows of the batch: every layer's forward
                (GEMM, then bias + activation on the block while in cache),
                the loss and its gradient dZ[L-1] on those rows, and
                dZ[L-2] = (dZ[L-1] W[L-1]^T) * f'(Z[L-2]) on the same rows.
  region j=1..L layer l = L - j: its share of dW[l] = A[l-1]^T dZ[l] and db[l]
                (these need every row, hence a new region), checked finite
                while in cache; and the rows of dZ[l-2].
  last region   the optimizer update, one contiguous share of the flat
                buffers per thread, applied only when the loss and every
                gradient share are finite; it reports whether every new
                parameter is finite (Plan.status tells Python which failed).
                The weight penalty (L1/L2, weight matrices only) is summed and
                its gradient added inside the update loops, and so is
                clip-by-value; clipping by global norm takes one more region
                before it (per-thread sums of squares of the same shares), and
                the max-norm constraint one after it (columns split by thread).

No element of a gradient is summed by two threads, so a step is bit-for-bit
repeatable for a given thread count, and the parallel and serial orders
differ only by the rounding of BLAS blocking.  Every region flushes
subnormals to zero (csrc/fm_fpu.h).
"""
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.math cimport isfinite, sqrt, INFINITY
from cpython.exc cimport PyErr_CheckSignals

import numpy as np
cimport numpy as cnp

cnp.import_array()

from fastmlp._kernels._cfm cimport (fm_dropout_key, dropout_rows, fm_grad_mod,
                                    sgd_update as c_sgd, adam_update as c_adam,
                                    adagrad_update as c_adagrad, rmsprop_update as c_rmsprop,
                                    nadam_update as c_nadam, sum_squares, penalty as c_penalty,
                                    max_norm_columns)
from fastmlp._kernels._losses cimport (FM_N_LOSSES, FM_Y_LABELS, FM_Y_TARGETS, fm_loss_name,
                                       fm_loss_y_kinds, loss_rows, loss_mean, loss_output)
from fastmlp._kernels._blocks cimport (share_lo, chunk_lo, adam_scales, nadam_mu, nadam_scales,
                                       dense_forward_rows,
                                       dense_param_grad_share, dense_input_grad_rows,
                                       activation_backward_rows, flush_denormals_begin,
                                       flush_denormals_end)
from fastmlp._kernels._runtime cimport (threads_for, GEMM_GRAIN, ELEMENTWISE_GRAIN,
                                        blas_enter, blas_leave)

cdef enum:
    STATUS_OK = 0             # Plan.status after a step
    STATUS_LOSS_NOT_FINITE = 1
    STATUS_GRAD_NOT_FINITE = 2
    STATUS_PARAMS_NOT_FINITE = 3
cdef enum:
    OPT_SGD = 0       # also GD (full batch)
    OPT_ADAM = 1      # also AdamW (weight_decay > 0)
    OPT_ADAGRAD = 2
    OPT_RMSPROP = 3
    OPT_NADAM = 4
    ACT_IDENTITY = 0  # csrc/fm_kernels.h lists identity first

cdef enum:
    MAX_THREADS = 64  # most threads one step uses (sizes per-thread partial results)
    MIN_ROWS_PER_THREAD = 32

# Rows per block of an inference forward pass: big enough for efficient GEMMs,
# small enough that a block of the widest layer stays in L2.
cdef Py_ssize_t PREDICT_BLOCK = 256


cdef struct LayerSpec:
    int n_in
    int n_out
    int act
    double alpha
    Py_ssize_t w_off      # offset of W (n_in, n_out) in the flat buffers, in elements
    Py_ssize_t b_off      # offset of b (n_out,)
    double drop           # dropout rate applied to this layer's output (0: none)
    char *Z               # (capacity, n_out) pre-activation
    char *A               # (capacity, n_out) post-activation; == Z for identity
    char *D               # (capacity, n_out) A after dropout (the next layer's input); == A if none
    char *dZ              # (capacity, n_out) dLoss/dZ (first dLoss/dD, turned into dLoss/dZ in place)


cdef struct Batch:
    Py_ssize_t rows
    const char *x         # (rows, n_in) or, with `order`, the whole data set
    const int64_t *labels # (rows,) class labels, or NULL
    const char *targets   # (rows, n_out) targets, or NULL
    const char *weights   # (rows,) sample weights, or NULL
    const int64_t *order  # NULL, or: batch row r is data-set row order[r]


cdef struct Step:
    int n_layers
    LayerSpec *layers
    char *params
    char *grads
    char *state1          # SGD velocity / Adam, NAdam m / Adagrad sum / RMSprop mean square
    char *state2          # Adam, NAdam v / RMSprop momentum buffer (or NULL)
    char *state3          # RMSprop mean gradient when centered (or NULL)
    Py_ssize_t n_params
    int loss_kind         # a code of FM_LOSSES (csrc/fm_kernels.h)
    double loss_param     # huber's delta, mape's epsilon
    int opt_kind
    double lr, momentum, beta1, beta2, eps, rho, momentum_decay, weight_decay
    bint nesterov
    long step             # optimizer steps taken so far (keys the dropout masks)
    unsigned long long seed  # keys the dropout masks
    double step_size      # per-step scalars of the current update
    double inv_sqrt_bc2
    double c_g, c_m       # NAdam's factors of g and m
    double mu_product     # NAdam: prod of mu_i over the steps taken
    double decay          # AdamW: 1 - lr weight_decay, on weight matrices
    double l1, l2         # penalty l1 |W|_1 + l2/2 |W|^2 on the weight matrices
    double max_norm       # max-norm constraint on each unit's incoming weights (0: off)
    double clip_norm      # clip the gradient to this global norm (0: off)
    double clip_value     # clip each gradient element to [-v, v] (0: off)
    fm_grad_mod mod_w     # the current step's gradient modifiers on weight matrices
    fm_grad_mod mod_rest  # ... and on everything else (biases: no penalty)
    bint use_mod_w, use_mod_rest
    Py_ssize_t *wspans    # [start, end) of each weight matrix, sorted
    double *norm_parts    # one partial sum (squares or penalty) per thread
    double *loss_parts    # one partial loss per thread
    int *finite_parts     # one "all finite" flag per thread
    int status            # STATUS_* of the last step
    char *xbuf            # gathered batch for the epoch loop (capacity, n_in)
    int64_t *lbuf         # gathered labels
    char *tbuf            # gathered targets (capacity, n_out)
    char *wbuf            # gathered sample weights


# ---- region bodies (one thread's share) -------------------------------------

cdef inline void _gather(Step *s, Batch *bt, Py_ssize_t r0, Py_ssize_t r1,
                         const floating *dummy) noexcept nogil:
    """Copy rows order[r0:r1] of the data set into the plan's batch buffers."""
    cdef int n_in = s.layers[0].n_in, k = s.layers[s.n_layers - 1].n_out
    cdef Py_ssize_t r, src
    for r in range(r0, r1):
        src = bt.order[r]
        memcpy(<floating *>s.xbuf + r * n_in, <const floating *>bt.x + src * n_in,
               n_in * sizeof(floating))
        if bt.labels != NULL:
            s.lbuf[r] = bt.labels[src]
        if bt.targets != NULL:
            memcpy(<floating *>s.tbuf + r * k, <const floating *>bt.targets + src * k,
                   k * sizeof(floating))
        if bt.weights != NULL:
            (<floating *>s.wbuf)[r] = (<const floating *>bt.weights)[src]


cdef inline double _loss_rows(Step *s, LayerSpec *lay, const int64_t *labels,
                              const floating *targets, const floating *w, Py_ssize_t rows,
                              Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Rows [r0, r1) of the batch's loss on the last layer's output A: returns
    their weighted sum and writes dLoss/dA (of the batch mean) into lay.dZ."""
    return loss_rows(s.loss_kind, s.loss_param, <const floating *>lay.A, labels, targets, w,
                     <floating *>lay.dZ, rows, r0, r1, lay.n_out)


cdef inline double _loss_mean(Step *s, double total, Py_ssize_t rows) noexcept nogil:
    """The batch loss from the sum of _loss_rows over all rows."""
    return loss_mean(s.loss_kind, total, rows, s.layers[s.n_layers - 1].n_out)


cdef void _region_forward(Step *s, Batch *bt, int tid, int nt,
                          const floating *dummy) noexcept nogil:
    cdef Py_ssize_t rows = bt.rows
    cdef Py_ssize_t r0 = share_lo(rows, tid, nt), r1 = share_lo(rows, tid + 1, nt)
    cdef const floating *x = <const floating *>bt.x
    cdef const int64_t *labels = bt.labels
    cdef const floating *targets = <const floating *>bt.targets
    cdef const floating *w = <const floating *>bt.weights
    cdef floating *P = <floating *>s.params
    cdef int L = s.n_layers, l, k
    cdef LayerSpec *lay
    cdef double part
    if bt.order != NULL:
        _gather(s, bt, r0, r1, dummy)
        x = <const floating *>s.xbuf
        labels = s.lbuf if labels != NULL else NULL
        targets = <const floating *>s.tbuf if targets != NULL else NULL
        w = <const floating *>s.wbuf if w != NULL else NULL
    # forward through every layer on rows [r0, r1)
    cdef const floating *inp = x
    for l in range(L):
        lay = &s.layers[l]
        dense_forward_rows(inp, P + lay.w_off, P + lay.b_off, <floating *>lay.Z,
                           <floating *>lay.A, r0, r1, lay.n_in, lay.n_out, lay.act, lay.alpha)
        if lay.drop > 0:
            dropout_rows(<const floating *>lay.A, <floating *>lay.D, r0, r1, lay.n_out,
                         fm_dropout_key(s.seed, l, s.step), lay.drop)
        inp = <const floating *>lay.D
    # loss and dLoss/dZ of the last layer on the same rows
    lay = &s.layers[L - 1]
    k = lay.n_out
    part = _loss_rows(s, lay, labels, targets, w, rows, r0, r1)
    s.loss_parts[tid] = part
    if lay.act != ACT_IDENTITY:  # loss on A = f(Z): chain rule into dZ
        activation_backward_rows(<floating *>lay.Z, <floating *>lay.A, <floating *>lay.dZ,
                                 r0, r1, k, lay.act, lay.alpha)
    if L >= 2:
        _input_grad_rows(s, L - 1, r0, r1, dummy)


cdef inline void _input_grad_rows(Step *s, int l, Py_ssize_t r0, Py_ssize_t r1,
                                  const floating *dummy) noexcept nogil:
    """dZ[l-1][r0:r1] = (dZ[l] W[l]^T) * mask[l-1] * f'(Z[l-1]) on rows [r0, r1)
    (the dropout mask, when layer l-1 has one, recomputed from its key)."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef LayerSpec *prev = &s.layers[l - 1]
    dense_input_grad_rows(<floating *>lay.dZ, <floating *>s.params + lay.w_off,
                          <floating *>prev.dZ, r0, r1, lay.n_in, lay.n_out)
    if prev.drop > 0:
        dropout_rows(<const floating *>prev.dZ, <floating *>prev.dZ, r0, r1, prev.n_out,
                     fm_dropout_key(s.seed, l - 1, s.step), prev.drop)
    activation_backward_rows(<floating *>prev.Z, <floating *>prev.A, <floating *>prev.dZ,
                             r0, r1, prev.n_out, prev.act, prev.alpha)


cdef inline floating *_at(char *base, Py_ssize_t off, const floating *dummy) noexcept nogil:
    """base + off elements, or NULL for an absent state buffer."""
    return <floating *>base + off if base != NULL else NULL


cdef inline bint _update_span(Step *s, Py_ssize_t off, Py_ssize_t n, bint weights,
                              const floating *dummy) noexcept nogil:
    """Optimizer update of the n contiguous parameters starting at `off`, with
    the penalty and decoupled decay when they are a weight matrix's; returns
    whether they are all finite afterwards."""
    if n <= 0:
        return True
    cdef const fm_grad_mod *mod = NULL
    cdef double decay = 1.0
    if weights:
        decay = s.decay
        if s.use_mod_w:
            mod = &s.mod_w
    elif s.use_mod_rest:
        mod = &s.mod_rest
    cdef floating *p = <floating *>s.params + off
    cdef const floating *g = <const floating *>s.grads + off
    if s.opt_kind == OPT_ADAM:
        return c_adam(p, g, _at(s.state1, off, dummy), _at(s.state2, off, dummy), n,
                      s.beta1, s.beta2, s.eps, s.step_size, s.inv_sqrt_bc2, decay, mod)
    if s.opt_kind == OPT_NADAM:
        return c_nadam(p, g, _at(s.state1, off, dummy), _at(s.state2, off, dummy), n,
                       s.beta1, s.beta2, s.eps, s.c_g, s.c_m, s.inv_sqrt_bc2, mod)
    if s.opt_kind == OPT_ADAGRAD:
        return c_adagrad(p, g, _at(s.state1, off, dummy), n, s.lr, s.eps, mod)
    if s.opt_kind == OPT_RMSPROP:
        return c_rmsprop(p, g, _at(s.state1, off, dummy), _at(s.state2, off, dummy),
                         _at(s.state3, off, dummy), n, s.lr, s.rho, s.eps, s.momentum, mod)
    return c_sgd(p, g, _at(s.state1, off, dummy), n, s.lr, s.momentum, s.nesterov, mod)


cdef bint _update_chunk(Step *s, Py_ssize_t lo, Py_ssize_t hi, double *pen,
                        const floating *dummy) noexcept nogil:
    """Update parameters [lo, hi): the parts inside weight matrices with their
    penalty, the rest (biases, padding) without.  Adds the penalty of those
    weights before the update to pen[0]; returns whether all are finite."""
    cdef bint ok = True
    cdef bint penalized = s.l1 != 0 or s.l2 != 0
    cdef Py_ssize_t cur = lo, a, b
    cdef int i
    for i in range(s.n_layers):
        a = s.wspans[2 * i] if s.wspans[2 * i] > cur else cur
        b = s.wspans[2 * i + 1] if s.wspans[2 * i + 1] < hi else hi
        if a >= b:
            continue
        ok &= _update_span(s, cur, a - cur, False, dummy)
        if penalized:
            pen[0] += c_penalty(<const floating *>s.params + a, b - a, s.l1, s.l2)
        ok &= _update_span(s, a, b - a, True, dummy)
        cur = b
    ok &= _update_span(s, cur, hi - cur, False, dummy)
    return ok


cdef void _region_backward(Step *s, const floating *x, Py_ssize_t rows, int l,
                           int tid, int nt) noexcept nogil:
    """Layer l's share of dW and db (checked finite), and rows of dZ[l-2]."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef const floating *inp = x if l == 0 else <const floating *>s.layers[l - 1].D
    if not dense_param_grad_share(inp, <floating *>lay.dZ, <floating *>s.grads + lay.w_off,
                                  <floating *>s.grads + lay.b_off, rows, lay.n_in, lay.n_out,
                                  tid, nt):
        s.finite_parts[tid] = 0
    if l >= 2:
        _input_grad_rows(s, l - 1, share_lo(rows, tid, nt), share_lo(rows, tid + 1, nt), x)


cdef bint _all_finite_parts(Step *s, int nt) noexcept nogil:
    cdef int tid
    for tid in range(nt):
        if not s.finite_parts[tid]:
            return False
    return True


cdef double _step(Step *s, Batch *bt, bint backward, bint update, int nt,
                  const floating *dummy) noexcept nogil:
    """Forward + loss (+ backward (+ update)) of one batch; returns the mean loss
    and sets s.status.  Nothing is updated unless loss and gradient are finite."""
    cdef int tid, l, L = s.n_layers
    cdef double total = 0.0
    cdef const floating *x
    cdef unsigned int fpu
    s.status = STATUS_OK
    with parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        _region_forward(s, bt, threadid(), nt, dummy)
        flush_denormals_end(fpu)
    for tid in range(nt):
        total += s.loss_parts[tid]
    total = _loss_mean(s, total, bt.rows)
    if not backward:
        return total
    if not isfinite(total):
        s.status = STATUS_LOSS_NOT_FINITE
        return total
    x = <const floating *>s.xbuf if bt.order != NULL else <const floating *>bt.x
    for tid in range(nt):
        s.finite_parts[tid] = 1
    for l in range(L - 1, -1, -1):
        with parallel(num_threads=nt):
            fpu = flush_denormals_begin()
            _region_backward(s, x, bt.rows, l, threadid(), nt)
            flush_denormals_end(fpu)
    if not _all_finite_parts(s, nt):
        s.status = STATUS_GRAD_NOT_FINITE
    elif update:
        total += _apply_update(s, nt, dummy)  # the loss includes the weight penalty
    return total


cdef void _step_scalars(Step *s) noexcept nogil:
    """Advance the step count and set the optimizer's per-step factors."""
    s.step += 1
    s.decay = 1.0
    if s.opt_kind == OPT_ADAM:
        adam_scales(s.lr, s.beta1, s.beta2, s.step, &s.step_size, &s.inv_sqrt_bc2)
        s.decay = 1.0 - s.lr * s.weight_decay
    elif s.opt_kind == OPT_NADAM:
        s.mu_product = nadam_scales(s.lr, s.beta1, s.beta2, s.momentum_decay, s.step,
                                    s.mu_product, &s.c_g, &s.c_m, &s.inv_sqrt_bc2)


cdef double _gradient_scale(Step *s, int nt, const floating *dummy) noexcept nogil:
    """Global-norm clipping factor min(1, clip_norm / |g|) of the whole gradient,
    from per-thread sums of squares over the shares the update will use."""
    cdef int tid
    cdef Py_ssize_t lo
    cdef unsigned int fpu
    cdef double total = 0.0, norm
    if s.clip_norm <= 0:
        return 1.0
    with parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        lo = chunk_lo(s.n_params, tid, nt)
        s.norm_parts[tid] = sum_squares(<const floating *>s.grads + lo,
                                        chunk_lo(s.n_params, tid + 1, nt) - lo)
        flush_denormals_end(fpu)
    for tid in range(nt):
        total += s.norm_parts[tid]
    norm = sqrt(total)
    return s.clip_norm / norm if norm > s.clip_norm else 1.0


cdef double _apply_update(Step *s, int nt, const floating *dummy) noexcept nogil:
    """The optimizer update of the whole flat buffer, from the stored gradient
    (clipped, plus the penalty gradient on weight matrices), then the max-norm
    constraint; sets s.status when a new parameter is not finite.  Returns the
    penalty of the weights before the update (0 without one)."""
    cdef int tid, l
    cdef Py_ssize_t lo
    cdef unsigned int fpu
    cdef double scale, pen = 0.0
    cdef LayerSpec *lay
    _step_scalars(s)
    scale = _gradient_scale(s, nt, dummy)
    s.mod_rest.scale = scale
    s.mod_rest.clip = s.clip_value if s.clip_value > 0 else INFINITY
    s.mod_rest.l1 = 0.0
    s.mod_rest.l2 = 0.0
    s.mod_w = s.mod_rest
    s.mod_w.l1 = s.l1
    s.mod_w.l2 = s.l2
    s.use_mod_rest = scale != 1.0 or s.clip_value > 0
    s.use_mod_w = s.use_mod_rest or s.l1 != 0 or s.l2 != 0
    with parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        lo = chunk_lo(s.n_params, tid, nt)
        s.norm_parts[tid] = 0.0
        s.finite_parts[tid] = _update_chunk(s, lo, chunk_lo(s.n_params, tid + 1, nt),
                                            &s.norm_parts[tid], dummy)
        flush_denormals_end(fpu)
    for tid in range(nt):
        pen += s.norm_parts[tid]
    if not _all_finite_parts(s, nt):
        s.status = STATUS_PARAMS_NOT_FINITE
    elif s.max_norm > 0:
        with parallel(num_threads=nt):
            fpu = flush_denormals_begin()
            tid = threadid()
            for l in range(s.n_layers):
                lay = &s.layers[l]
                max_norm_columns(<floating *>s.params + lay.w_off, lay.n_in, lay.n_out,
                                 share_lo(lay.n_out, tid, nt), share_lo(lay.n_out, tid + 1, nt),
                                 s.max_norm)
            flush_denormals_end(fpu)
    return pen


cdef int _predict(Step *s, const floating *x, floating *out, Py_ssize_t rows,
                  bint output_transform, int nt, int width) noexcept nogil:
    """Inference: out = network(x), in blocks of PREDICT_BLOCK rows per thread,
    ping-ponging between two scratch blocks (pre-activations are not kept).
    Scratch is per call and per thread, so concurrent predictions are safe.
    Returns 0, or -1 when scratch memory could not be allocated."""
    cdef int tid, l, L = s.n_layers
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef unsigned int fpu
    cdef Py_ssize_t r0, r1, b0, m
    cdef floating *scratch
    cdef floating *dst
    cdef const floating *inp
    cdef floating *P = <floating *>s.params
    cdef LayerSpec *lay
    with parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        scratch = <floating *>malloc(2 * PREDICT_BLOCK * width * sizeof(floating)) if L > 1 else NULL
        if L > 1 and scratch == NULL:
            failed_p[0] = 1
        b0 = r0
        while b0 < r1 and (L == 1 or scratch != NULL):
            m = r1 - b0 if r1 - b0 < PREDICT_BLOCK else PREDICT_BLOCK
            inp = x + b0 * s.layers[0].n_in
            for l in range(L):
                lay = &s.layers[l]
                if l == L - 1:
                    dst = out + b0 * lay.n_out
                else:
                    dst = scratch + (l % 2) * PREDICT_BLOCK * width
                dense_forward_rows(inp, P + lay.w_off, P + lay.b_off, dst, dst, 0, m,
                                   lay.n_in, lay.n_out, lay.act, lay.alpha)
                inp = dst
            if output_transform:
                loss_output(s.loss_kind, out + b0 * s.layers[L - 1].n_out,
                            out + b0 * s.layers[L - 1].n_out, m, s.layers[L - 1].n_out)
            b0 = b0 + m
        free(scratch)
        flush_denormals_end(fpu)
    return -failed


# ---- the Python face --------------------------------------------------------

cdef char *_address(a) except NULL:
    """Address of a C-contiguous ndarray's data (it must outlive its use)."""
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"expected a NumPy array, got {type(a).__name__}")
    return <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline bint _is_matrix(a, int typenum, Py_ssize_t cols):
    """a is a C-contiguous 2-D ndarray of dtype `typenum` with `cols` columns (-1: any)."""
    return (isinstance(a, cnp.ndarray) and cnp.PyArray_NDIM(<cnp.ndarray>a) == 2
            and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            and (cols < 0 or cnp.PyArray_DIM(<cnp.ndarray>a, 1) == cols))


cdef inline bint _is_vector(a, int typenum, Py_ssize_t n):
    """a is a C-contiguous 1-D ndarray of dtype `typenum` and length n (-1: any)."""
    return (isinstance(a, cnp.ndarray) and cnp.PyArray_NDIM(<cnp.ndarray>a) == 1
            and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            and (n < 0 or cnp.PyArray_DIM(<cnp.ndarray>a, 0) == n))


cdef class Plan:
    """Native execution plan of a Sequential model (see the module docstring).

    Parameters
    ----------
    layers : list of (n_in, n_out, activation_code, alpha, w_offset, b_offset, dropout)
        Dense layers; `dropout` is the rate of inverted dropout on the layer's
        output during training (0: none; must be 0 on the last layer).
    params, grads : ndarray of shape (n_params,), float32 or float64
        The model's flat buffers; the plan reads and writes them in place.
    loss_kind : int
        The loss's code: its index in fastmlp._kernels.losses.LOSSES.
    loss_param : float
        The loss's parameter (huber's delta, mape's epsilon; > 0 for those two).
    seed : int, keys the dropout masks with (layer, step, row, unit)
    """
    cdef Step s
    cdef readonly object dtype
    cdef int typenum
    cdef bint is_double
    cdef Py_ssize_t capacity, gather_capacity
    cdef int width
    cdef list _keep           # arrays whose memory the Step points into
    cdef list _layer_buffers
    cdef object _state1, _state2, _state3, _params, _grads
    cdef object _gather_buffers

    def __cinit__(self):
        self.s.layers = NULL
        self.s.loss_parts = NULL
        self.s.finite_parts = NULL
        self.s.wspans = NULL
        self.s.norm_parts = NULL

    def __init__(self, list layers, params, grads, int loss_kind, double loss_param=0.0,
                 seed=0):
        cdef int i, L = len(layers)
        if L == 0:
            raise ValueError("a plan needs at least one layer")
        if not 0 <= loss_kind < FM_N_LOSSES:
            raise ValueError(f"unknown loss code {loss_kind}; there are {FM_N_LOSSES}")
        if fm_loss_name(loss_kind) in (b"huber", b"mape") and not loss_param > 0:
            raise ValueError(f"{fm_loss_name(loss_kind).decode()} needs a parameter > 0, "
                             f"got {loss_param}")
        if params.dtype not in (np.float32, np.float64) or grads.dtype != params.dtype:
            raise ValueError("params and grads must be float32 or float64 and of one dtype")
        if params.ndim != 1 or grads.shape != params.shape or not params.flags.c_contiguous \
                or not grads.flags.c_contiguous or not params.flags.writeable:
            raise ValueError("params and grads must be writeable 1-D contiguous arrays of one size")
        self.dtype = params.dtype
        self.is_double = params.dtype == np.float64
        self.typenum = cnp.NPY_FLOAT64 if self.is_double else cnp.NPY_FLOAT32
        self._params = params
        self._grads = grads
        self.s.layers = <LayerSpec *>malloc(L * sizeof(LayerSpec))
        self.s.loss_parts = <double *>malloc(MAX_THREADS * sizeof(double))
        self.s.finite_parts = <int *>malloc(MAX_THREADS * sizeof(int))
        self.s.norm_parts = <double *>malloc(MAX_THREADS * sizeof(double))
        self.s.wspans = <Py_ssize_t *>malloc(2 * L * sizeof(Py_ssize_t))
        if self.s.layers == NULL or self.s.loss_parts == NULL or self.s.finite_parts == NULL \
                or self.s.norm_parts == NULL or self.s.wspans == NULL:
            raise MemoryError()
        self.s.n_layers = L
        self.s.params = _address(params)
        self.s.grads = _address(grads)
        self.s.n_params = params.shape[0]
        self.s.loss_kind = loss_kind
        self.s.seed = <unsigned long long>(int(seed) & 0xffffffffffffffff)
        self.s.loss_param = loss_param
        self.width = 1
        for i, (n_in, n_out, act, alpha, w_off, b_off, drop) in enumerate(layers):
            if w_off + n_in * n_out > params.shape[0] or b_off + n_out > params.shape[0]:
                raise ValueError(f"layer {i} does not fit in the parameter buffer")
            if i > 0 and n_in != self.s.layers[i - 1].n_out:
                raise ValueError(f"layer {i} expects {n_in} inputs, the previous layer has "
                                 f"{self.s.layers[i - 1].n_out} outputs")
            if not 0.0 <= drop < 1.0 or (drop > 0 and i == L - 1):
                raise ValueError(f"layer {i}: dropout rate {drop} must be in [0, 1), and 0 "
                                 "on the last layer")
            self.s.layers[i] = LayerSpec(n_in, n_out, act, alpha, w_off, b_off, drop,
                                         NULL, NULL, NULL, NULL)
            self.width = max(self.width, n_out)
        spans = sorted((spec[4], spec[4] + spec[0] * spec[1]) for spec in layers)  # W spans
        for i, (start, end) in enumerate(spans):
            if i > 0 and start < spans[i - 1][1]:
                raise ValueError("weight matrices overlap in the parameter buffer")
            self.s.wspans[2 * i], self.s.wspans[2 * i + 1] = start, end
        self.capacity = 0
        self.gather_capacity = 0
        self._keep = []
        self._layer_buffers = []
        self.s.step = 0
        self.set_sgd(0.01, 0.0, False, None)
        self.set_regularization(0.0, 0.0, 0.0)
        self.set_clipping(0.0, 0.0)

    def __dealloc__(self):
        free(self.s.layers)
        free(self.s.loss_parts)
        free(self.s.finite_parts)
        free(self.s.norm_parts)
        free(self.s.wspans)

    # -- optimizer ------------------------------------------------------------

    def set_sgd(self, double lr, double momentum, bint nesterov, velocity):
        """Use SGD; `velocity` is the flat momentum buffer (None when momentum == 0)."""
        if momentum != 0.0:
            self._check_state(velocity)
        self._set_states(OPT_SGD, velocity if momentum != 0.0 else None, None, None)
        self.s.lr, self.s.momentum, self.s.nesterov = lr, momentum, nesterov

    def set_adam(self, double lr, double beta1, double beta2, double eps, m, v,
                 double weight_decay=0.0):
        """Use Adam with flat moment buffers m and v; weight_decay > 0 makes it
        AdamW (decoupled decay of the weight matrices by lr * weight_decay)."""
        self._check_state(m)
        self._check_state(v)
        self._set_states(OPT_ADAM, m, v, None)
        self.s.lr, self.s.beta1, self.s.beta2, self.s.eps = lr, beta1, beta2, eps
        self.s.weight_decay = weight_decay

    def set_adagrad(self, double lr, double eps, accumulator):
        """Use Adagrad with the flat sum-of-squares buffer `accumulator`."""
        self._check_state(accumulator)
        self._set_states(OPT_ADAGRAD, accumulator, None, None)
        self.s.lr, self.s.eps = lr, eps

    def set_rmsprop(self, double lr, double rho, double eps, double momentum, square_avg,
                    momentum_buffer=None, grad_avg=None):
        """Use RMSprop with the flat mean-square buffer; `momentum_buffer` is needed
        when momentum > 0, `grad_avg` given selects the centered variant."""
        self._check_state(square_avg)
        if momentum != 0.0:
            self._check_state(momentum_buffer)
        if grad_avg is not None:
            self._check_state(grad_avg)
        self._set_states(OPT_RMSPROP, square_avg, momentum_buffer if momentum != 0.0 else None,
                         grad_avg)
        self.s.lr, self.s.rho, self.s.eps, self.s.momentum = lr, rho, eps, momentum

    def set_nadam(self, double lr, double beta1, double beta2, double eps,
                  double momentum_decay, m, v):
        """Use NAdam (PyTorch's formulation) with flat moment buffers m and v."""
        self._check_state(m)
        self._check_state(v)
        self._set_states(OPT_NADAM, m, v, None)
        self.s.lr, self.s.beta1, self.s.beta2, self.s.eps = lr, beta1, beta2, eps
        self.s.momentum_decay = momentum_decay
        self._sync_mu_product()

    def set_regularization(self, double l1, double l2, double max_norm):
        """Penalty l1 |W|_1 + l2/2 |W|^2 on every weight matrix W (not the biases),
        its gradient added inside the update, and the max-norm constraint
        |W[:, j]| <= max_norm after each update (0: off)."""
        for name, value in (("l1", l1), ("l2", l2), ("max_norm", max_norm)):
            if not (value >= 0 and isfinite(value)):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        self.s.l1, self.s.l2, self.s.max_norm = l1, l2, max_norm

    def set_clipping(self, double clip_norm, double clip_value):
        """Clip the loss gradient to global norm clip_norm, then each element to
        [-clip_value, clip_value], before the update (0: off)."""
        for name, value in (("clip_norm", clip_norm), ("clip_value", clip_value)):
            if not (value >= 0 and isfinite(value)):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        self.s.clip_norm, self.s.clip_value = clip_norm, clip_value

    def _set_states(self, int kind, s1, s2, s3):
        self._state1, self._state2, self._state3 = s1, s2, s3
        self.s.state1 = _address(s1) if s1 is not None else NULL
        self.s.state2 = _address(s2) if s2 is not None else NULL
        self.s.state3 = _address(s3) if s3 is not None else NULL
        self.s.opt_kind = kind
        self.s.weight_decay = 0.0

    def _sync_mu_product(self):
        """NAdam's prod_{i<=step} mu_i, recomputed when the step count is set."""
        cdef double product = 1.0
        cdef long t
        if self.s.opt_kind == OPT_NADAM:
            for t in range(1, self.s.step + 1):
                product *= nadam_mu(self.s.beta1, self.s.momentum_decay, t)
        self.s.mu_product = product

    def _check_state(self, a):
        if a is None or a.dtype != self.dtype or a.shape != (self.s.n_params,) \
                or not a.flags.c_contiguous or not a.flags.writeable:
            raise ValueError("optimizer state must be a writeable contiguous array "
                             "shaped and typed like the parameters")

    def penalty(self):
        """The weight penalty l1 |W|_1 + l2/2 |W|^2 summed over the weight
        matrices at the current parameters (0.0 without one)."""
        cdef double total = 0.0
        cdef int i
        cdef Py_ssize_t a, n
        if self.s.l1 == 0 and self.s.l2 == 0:
            return 0.0
        with nogil:
            for i in range(self.s.n_layers):
                a, n = self.s.wspans[2 * i], self.s.wspans[2 * i + 1] - self.s.wspans[2 * i]
                if self.is_double:
                    total += c_penalty(<const double *>self.s.params + a, n, self.s.l1, self.s.l2)
                else:
                    total += c_penalty(<const float *>self.s.params + a, n, self.s.l1, self.s.l2)
        return total

    @property
    def lr(self):
        """Learning rate used by the next update (schedules change it between steps)."""
        return self.s.lr

    @lr.setter
    def lr(self, double value):
        if not (value >= 0 and isfinite(value)):
            raise ValueError(f"the learning rate must be finite and >= 0, got {value}")
        self.s.lr = value

    @property
    def status(self):
        """Outcome of the last step: 0 ok, 1 loss not finite, 2 gradient not finite
        (1 and 2 leave the parameters untouched), 3 parameters not finite after the update."""
        return self.s.status

    @property
    def step(self):
        """Number of optimizer steps taken (Adam's t)."""
        return self.s.step

    @step.setter
    def step(self, long value):
        if value < 0:
            raise ValueError("step must be >= 0")
        self.s.step = value
        self._sync_mu_product()

    # -- buffers --------------------------------------------------------------

    def ensure_capacity(self, Py_ssize_t rows):
        """Allocate the per-layer buffers for batches of up to `rows` rows
        (only when larger than before: steady-state steps allocate nothing)."""
        cdef int i
        if rows <= self.capacity:
            return
        bufs = []
        for i in range(self.s.n_layers):
            lay = &self.s.layers[i]
            Z = np.empty((rows, lay.n_out), dtype=self.dtype)
            A = Z if lay.act == ACT_IDENTITY else np.empty((rows, lay.n_out), dtype=self.dtype)
            D = A if lay.drop == 0 else np.empty((rows, lay.n_out), dtype=self.dtype)
            dZ = np.empty((rows, lay.n_out), dtype=self.dtype)
            lay.Z, lay.A, lay.D, lay.dZ = _address(Z), _address(A), _address(D), _address(dZ)
            bufs.append((Z, A, D, dZ))
        self._layer_buffers = bufs
        self.capacity = rows

    def _ensure_gather(self, Py_ssize_t rows):
        if rows <= self.gather_capacity:
            return
        n_in, k = self.s.layers[0].n_in, self.s.layers[self.s.n_layers - 1].n_out
        xb = np.empty((rows, n_in), dtype=self.dtype)
        lb = np.empty(rows, dtype=np.int64)
        tb = np.empty((rows, k), dtype=self.dtype)
        wb = np.empty(rows, dtype=self.dtype)
        self.s.xbuf, self.s.lbuf = _address(xb), <int64_t *>_address(lb)
        self.s.tbuf, self.s.wbuf = _address(tb), _address(wb)
        self._gather_buffers = (xb, lb, tb, wb)
        self.gather_capacity = rows

    # -- steps ----------------------------------------------------------------

    cdef int _threads(self, Py_ssize_t rows):
        """Threads for a batch of `rows`: enough multiply-adds per thread
        (threads_for) and at least MIN_ROWS_PER_THREAD rows each, since GEMMs on
        thinner row blocks run far below the BLAS's peak."""
        cdef double work = 0
        cdef int i
        for i in range(self.s.n_layers):
            work += <double>self.s.layers[i].n_in * self.s.layers[i].n_out
        return max(1, min(threads_for(work * rows, GEMM_GRAIN), rows // MIN_ROWS_PER_THREAD,
                          MAX_THREADS))

    cdef Batch _batch(self, X, y, sample_weight, order) except *:
        """Check the arrays against the plan (shapes, dtypes, contiguity) and describe them."""
        cdef Batch bt
        cdef int n_in = self.s.layers[0].n_in, k = self.s.layers[self.s.n_layers - 1].n_out
        cdef int typenum = self.typenum
        cdef Py_ssize_t n_src
        if not _is_matrix(X, typenum, n_in):
            raise ValueError(f"X must be a C-contiguous {self.dtype} array of shape (n, {n_in})")
        n_src = cnp.PyArray_DIM(<cnp.ndarray>X, 0)
        bt.rows = n_src if order is None else len(order)
        if bt.rows == 0:
            raise ValueError("the batch is empty")
        bt.x = _address(X)
        bt.labels = NULL
        bt.targets = NULL
        bt.weights = NULL
        bt.order = NULL
        if _is_vector(y, cnp.NPY_INT64, n_src):
            if not fm_loss_y_kinds(self.s.loss_kind) & FM_Y_LABELS:
                raise ValueError(f"the {fm_loss_name(self.s.loss_kind).decode()} loss takes "
                                 f"targets of shape ({n_src}, {k}), not class labels")
            bt.labels = <const int64_t *>_address(y)
        elif _is_matrix(y, typenum, k) and cnp.PyArray_DIM(<cnp.ndarray>y, 0) == n_src:
            if not fm_loss_y_kinds(self.s.loss_kind) & FM_Y_TARGETS:
                raise ValueError(f"the {fm_loss_name(self.s.loss_kind).decode()} loss takes "
                                 f"int64 class labels of shape ({n_src},)")
            bt.targets = _address(y)
        else:
            raise ValueError(f"y must be C-contiguous int64 labels of shape ({n_src},) or "
                             f"{self.dtype} targets of shape ({n_src}, {k})")
        if sample_weight is not None:
            if not _is_vector(sample_weight, typenum, n_src):
                raise ValueError(f"sample_weight must be a C-contiguous {self.dtype} array "
                                 f"of shape ({n_src},)")
            bt.weights = _address(sample_weight)
        if order is not None:
            if not _is_vector(order, cnp.NPY_INT64, -1):
                raise ValueError("order must be a C-contiguous 1-D int64 array")
            bt.order = <const int64_t *>_address(order)
        return bt

    cdef double _run(self, Batch *bt, bint backward, bint update) except? -1:
        cdef double loss
        cdef int nt = self._threads(bt.rows)
        self.ensure_capacity(bt.rows)
        blas_enter()
        with nogil:
            if self.is_double:
                loss = _step(&self.s, bt, backward, update, nt, <const double *>NULL)
            else:
                loss = _step(&self.s, bt, backward, update, nt, <const float *>NULL)
        blas_leave()
        return loss

    def train_step(self, X, y, sample_weight=None):
        """Forward, loss, backward and optimizer update of one batch, in one native
        call; returns the batch's mean loss (before the update)."""
        cdef Batch bt = self._batch(X, y, sample_weight, None)
        return self._run(&bt, True, True)

    def forward_backward(self, X, y, sample_weight=None):
        """Loss of the batch and its gradient into the flat gradient buffer (no update).
        Both are the data loss's: the weight penalty and its gradient are added by
        apply_update, so gradients summed across workers carry them once."""
        cdef Batch bt = self._batch(X, y, sample_weight, None)
        return self._run(&bt, True, False)

    def loss(self, X, y, sample_weight=None):
        """Mean loss of the batch (forward only)."""
        cdef Batch bt = self._batch(X, y, sample_weight, None)
        return self._run(&bt, False, False)

    def apply_update(self):
        """One optimizer update of every parameter from the flat gradient buffer
        (status tells whether every new parameter is finite).  The buffer holds
        the loss gradient (as forward_backward leaves it): clipping and the
        penalty gradient are applied here.  Returns the weight penalty before
        the update, which train_step adds to the loss it returns."""
        cdef int nt = min(threads_for(<double>self.s.n_params / 2, ELEMENTWISE_GRAIN), MAX_THREADS)
        cdef double pen
        self.s.status = STATUS_OK
        with nogil:
            if self.is_double:
                pen = _apply_update(&self.s, nt, <const double *>NULL)
            else:
                pen = _apply_update(&self.s, nt, <const float *>NULL)
        return pen

    def train_epoch(self, X, y, order, Py_ssize_t batch_size, double[::1] losses,
                    sample_weight=None, const double[::1] lrs=None):
        """Train on the batches order[0:bs], order[bs:2 bs], ... of (X, y), gathering
        each batch's rows natively; with `lrs`, batch i is stepped with learning
        rate lrs[i] (a per-step schedule at no cost to the native loop).
        Writes each batch's loss to `losses` and returns
        the number of batches done, the last one included: fewer than all when a
        step fails (status != 0: a non-finite loss or gradient, whose update is not
        applied, or non-finite parameters after it).  A signal such as Ctrl-C is
        raised after the batch it arrived in, so the model is consistent."""
        cdef Py_ssize_t n = order.shape[0], start, i = 0, n_batches
        cdef Batch bt = self._batch(X, y, sample_weight, order)
        cdef const int64_t *full_order = bt.order
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        n_batches = (n + batch_size - 1) // batch_size
        if losses.shape[0] < n_batches:
            raise ValueError(f"losses must have room for {n_batches} batches")
        if lrs is not None:
            if lrs.shape[0] < n_batches:
                raise ValueError(f"lrs must hold a learning rate for each of {n_batches} batches")
            head = np.asarray(lrs[:n_batches])
            if not (np.isfinite(head).all() and (head >= 0).all()):
                raise ValueError("the learning rates must be finite and >= 0")
        if (<object>order >= X.shape[0]).any() or (<object>order < 0).any():
            raise ValueError("order holds row indices outside the data")
        self.ensure_capacity(min(batch_size, n))
        self._ensure_gather(min(batch_size, n))
        for i in range(n_batches):
            start = i * batch_size
            bt.order = full_order + start
            bt.rows = min(batch_size, n - start)
            if lrs is not None:
                self.s.lr = lrs[i]
            losses[i] = self._run(&bt, True, True)
            if self.s.status != STATUS_OK:
                return i + 1
            PyErr_CheckSignals()
        return n_batches

    def predict(self, X, out, bint output_transform=True):
        """out = the network's output for X: with output_transform, what the loss
        makes of the last layer (softmax or sigmoid probabilities, a Poisson rate;
        see losses.loss_output), else the raw last layer."""
        cdef int n_in = self.s.layers[0].n_in, k = self.s.layers[self.s.n_layers - 1].n_out
        if not _is_matrix(X, self.typenum, n_in):
            raise ValueError(f"X must be a C-contiguous {self.dtype} array of shape (n, {n_in})")
        if not _is_matrix(out, self.typenum, k) or out.shape[0] != X.shape[0] \
                or not out.flags.writeable:
            raise ValueError(f"out must be a writeable C-contiguous {self.dtype} array of shape "
                             f"({X.shape[0]}, {k})")
        cdef Py_ssize_t rows = X.shape[0]
        if rows == 0:
            return out
        cdef char *xp = _address(X)
        cdef char *op = _address(out)
        cdef int nt = self._threads(rows)
        cdef int width = self.width, status
        blas_enter()
        with nogil:
            if self.is_double:
                status = _predict(&self.s, <double *>xp, <double *>op, rows, output_transform,
                                  nt, width)
            else:
                status = _predict(&self.s, <float *>xp, <float *>op, rows, output_transform,
                                  nt, width)
        blas_leave()
        if status != 0:
            raise MemoryError("could not allocate scratch memory for predict")
        return out
