# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled train step: forward, loss, backward and update in one native call.

Design
------
A Plan holds raw pointers to the model's flat parameter, gradient and
optimizer-state buffers (each layer's W and b are views into them) and to
per-layer activation buffers allocated once for the largest batch seen.  A
step never allocates and never returns to Python between layers.

A model is a list of layers of four kinds: dense (Z = X W + b, A = f(Z)),
maxout (a dense layer with `pieces` outputs per unit and the max over them),
batch norm (per-feature normalization with learned gamma, beta, then f) and
PReLU (one learned slope per unit); each may have inverted dropout on its
output.

Threads (one OpenMP pool; the BLAS is kept single-threaded, see _runtime.pyx)
get static shares of the batch rows, the same in every region of a step.
Row-local work of consecutive layers runs in one parallel region; a new region
starts only where the step needs every row:

  forward       one region per run of layers between batch norms.  Each
                thread, on its rows, does every layer's forward (GEMM, then
                bias + activation / maxout's max, PReLU, batch norm's affine
                map + activation, dropout, each on the block while it is in
                cache).  A dense layer whose input or output is wider than
                the batch splits its GEMM between two barriers instead
                (_forward_split): by columns of W, or along the inner
                dimension into partial products that each thread then adds
                on its rows.  A run that ends at a batch norm ends with the exact
                two-pass mean and M2 of that layer's input on the thread's
                rows (in double); between the regions they are merged in
                thread order (Chan et al. 1979) into the batch statistics the
                next region normalizes with.
  last run      also the loss and dLoss/dA of the last layer on the same
                rows, then the backward chain down the layers for as long as
                it is row-local: each layer's dropout mask, activation
                derivative and maxout routing, then the rows of its input
                gradient (dZ W^T, PReLU's slopes), and so on.  The chain stops
                after layer 0, or at a batch norm, with the per-thread sums of
                dy and dy xhat on its rows (its input gradient needs them
                over every row).
  per batch norm the chain met: its sums merged between regions in thread
                order (dbeta, dgamma), then one region with each thread's
                shares of dW and db (PReLU's dalpha) of every layer above it,
                whose dZ is now complete, and the thread's rows of the batch
                norm's input gradient, continuing the chain.
  parameters    the shares of dW and db of the remaining layers (dW split
                along its longer side, db and dalpha by columns), each
                checked finite while in cache.
  update        the optimizer update in contiguous chunks of the flat
                buffers, one per thread (a weight matrix whose forward GEMM
                was split along the inner dimension goes by the rows each
                thread multiplied, which it then packs next step from its own
                cache), applied only when the loss and every gradient share
                are finite; it reports whether every new parameter is finite
                (Plan.status tells Python which failed).
                The weight penalty (L1/L2, weight matrices only) is summed and
                its gradient added inside the update loops, and so is
                clip-by-value; clipping by global norm takes one more region
                before it (per-thread sums of squares of the same shares), and
                the max-norm constraint one after it (columns split by thread).
                The batch norms' running averages then take in the batch
                statistics (serially: one value per feature).

A training step is 3 regions without batch norm, at most 3 + 2 b with b of
them (no row-local work is split across regions needlessly).  No element
is summed by two threads except the per-feature batch statistics and the
partial products of an inner split, which are merged in a fixed order, so a
step is bit-for-bit repeatable for a given thread count, and the parallel and
serial orders differ only by rounding.
Every region flushes subnormals to zero (csrc/fm_fpu.h).
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

from fastmlp._layer_specs import KINDS, layer_spec, spec_spans
from fastmlp._memory import aligned_empty

from fastmlp._kernels._cfm cimport (fm_dropout_key, dropout_rows, fm_grad_mod, fm_barrier,
                                    bias_activation, add_to,
                                    sgd_update as c_sgd, adam_update as c_adam,
                                    adagrad_update as c_adagrad, rmsprop_update as c_rmsprop,
                                    nadam_update as c_nadam, sum_squares, penalty as c_penalty,
                                    max_norm_columns)
from fastmlp._kernels._cfm cimport (FM_N_ACTIVATIONS, fm_bn_merge_stats, bn_block_stats, bn_apply,
                                    bn_grad_sums, bn_input_grad, prelu_forward, prelu_input_grad,
                                    prelu_alpha_grad, maxout_backward, block_finite)
from fastmlp._kernels._losses cimport (FM_N_LOSSES, FM_Y_LABELS, FM_Y_TARGETS, fm_loss_name,
                                       fm_loss_y_kinds, loss_rows, loss_mean, loss_output)
from fastmlp._kernels._blocks cimport (share_lo, chunk_lo, adam_scales, nadam_mu, nadam_scales,
                                       dense_forward_rows, dense_forward_columns,
                                       dense_forward_inner,
                                       dense_param_grad_share, dense_input_grad_rows,
                                       dense_input_grad_columns,
                                       activation_backward_rows, flush_denormals_begin,
                                       flush_denormals_end, maxout_forward_rows)
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
    KIND_DENSE = 0        # layer kinds of a plan (Plan.KINDS names them)
    KIND_MAXOUT = 1
    KIND_BATCHNORM = 2
    KIND_PRELU = 3

# forward multiply-adds between two signal checks of the native epoch loop
# (about a millisecond of training)
cdef double SIGNAL_WORK = 5e7

cdef enum:
    SPLIT_ROWS = 0        # how a dense layer's forward GEMM is shared (_forward_split)
    SPLIT_COLUMNS = 1
    SPLIT_INNER = 2

cdef enum:
    MAX_THREADS = 64  # most threads one step uses (sizes per-thread partial results)
    MIN_ROWS_PER_THREAD = 32
    INNER_MIN_WEIGHTS = 16384   # smallest W whose forward GEMM is split inner (_forward_split)

# Rows per block of an inference forward pass.  Each block's GEMMs pack every
# weight matrix again, so blocks are long: 1024 rows made the 1024-2048-2048-10
# net's predict ~20% faster than 256 (2 threads).  A block of the widest layer
# is held to PREDICT_SCRATCH elements (8 MB in float32), so very wide layers
# get shorter blocks instead of huge scratch buffers.
cdef Py_ssize_t PREDICT_BLOCK = 1024
cdef Py_ssize_t PREDICT_SCRATCH = 1 << 21


cdef struct LayerSpec:
    int kind              # KIND_*
    int n_in
    int n_out             # output units
    int n_z               # columns of W and b: n_out * pieces (maxout), else n_out
    int pieces            # maxout's pieces per unit (1 otherwise)
    int act               # activation after dense / batch norm (identity for maxout, prelu)
    double alpha
    Py_ssize_t w_off      # offset in the flat buffers, in elements, of W (n_in, n_z) (dense,
                          # maxout), gamma (n_out,) (batch norm) or the slopes (n_out,) (prelu)
    Py_ssize_t b_off      # offset of b (n_z,) (dense, maxout) or beta (n_out,) (batch norm)
    Py_ssize_t rm_off     # batch norm: running mean (n_out,) in the running-statistics buffer
    Py_ssize_t rv_off     # batch norm: running variance (n_out,)
    Py_ssize_t vec_off    # batch norm: its 5 per-feature vectors in Step.bn_vec
    Py_ssize_t stat_off   # batch norm: its batch mean and variance in Step.bn_stats
    double momentum       # batch norm: running = momentum running + (1 - momentum) batch
    double eps            # batch norm: variance floor in 1 / sqrt(var + eps)
    double drop           # dropout rate applied to this layer's output (0: none)
    char *Z               # (capacity, n_out) pre-activation (dense, batch norm); == A otherwise
    char *A               # (capacity, n_out) post-activation; == Z for identity
    char *D               # (capacity, n_out) A after dropout (the next layer's input); == A if none
    char *dZ              # (capacity, n_out) dLoss/dZ (first dLoss/dD, turned into dLoss/dZ in place)
    char *P               # maxout: (capacity, n_z) pieces, bias included
    char *dP              # maxout: (capacity, n_z) dLoss/dP


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
    Py_ssize_t *wspans    # [start, end) of each weight matrix (dense, maxout W), sorted
    int *wspan_layer      # the layer whose W each span is
    int n_wspans
    char *partials        # inner-split partial products of threads 1.. (nt - 1, rows, n_out)
    double *norm_parts    # one partial sum (squares or penalty) per thread
    double *loss_parts    # one partial loss per thread
    int *finite_parts     # one "all finite" flag per thread
    int status            # STATUS_* of the last step
    char *xbuf            # gathered batch for the epoch loop (capacity, n_in)
    int64_t *lbuf         # gathered labels
    char *tbuf            # gathered targets (capacity, n_out)
    char *wbuf            # gathered sample weights
    # batch norms
    int n_bn
    char *running         # running means and variances (the model's flat state buffer)
    char *bn_vec          # per batch norm, 5 vectors: center (batch mean), 1/sqrt(var + eps),
                          # gamma/sqrt(var + eps), mean(dy), mean(dy xhat)
    double *bn_stats      # per batch norm: batch mean and biased variance
    double *bn_parts      # per thread: 2 partial vectors of the widest batch norm
    Py_ssize_t bn_width   # that width (stride of the partial vectors)
    Py_ssize_t bn_vec_len # 5 x the batch norms' total width
    bint stats_pending    # batch statistics not yet folded into the running averages
    Py_ssize_t stats_rows # the batch size they come from


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


cdef inline const floating *_input(Step *s, const floating *x, int l) noexcept nogil:
    """The input of layer l: the batch x, or the previous layer's output after dropout."""
    return x if l == 0 else <const floating *>s.layers[l - 1].D


cdef inline int _next_batchnorm(Step *s, int l) noexcept nogil:
    """The first batch norm at or after layer l, or n_layers."""
    while l < s.n_layers and s.layers[l].kind != KIND_BATCHNORM:
        l += 1
    return l


cdef inline int _chain_stop(Step *s, int l) noexcept nogil:
    """Where the row-local backward chain from layer l stops: the last batch
    norm at or before l, or layer 0."""
    while l > 0 and s.layers[l].kind != KIND_BATCHNORM:
        l -= 1
    return l


cdef inline void _forward_rows(Step *s, int l, const floating *inp, Py_ssize_t r0,
                               Py_ssize_t r1) noexcept nogil:
    """Layer l's forward pass on rows [r0, r1) of its input, then its dropout."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef floating *P = <floating *>s.params
    cdef const floating *vec
    cdef int n = lay.n_out
    if lay.kind == KIND_DENSE:
        dense_forward_rows(inp, P + lay.w_off, P + lay.b_off, <floating *>lay.Z,
                           <floating *>lay.A, r0, r1, lay.n_in, n, lay.act, lay.alpha)
    elif lay.kind == KIND_MAXOUT:
        maxout_forward_rows(inp, P + lay.w_off, P + lay.b_off, <floating *>lay.P,
                            <floating *>lay.A, r0, r1, lay.n_in, n, lay.pieces)
    elif lay.kind == KIND_PRELU:
        prelu_forward(inp + r0 * n, P + lay.w_off, <floating *>lay.A + r0 * n, r1 - r0, n)
    else:  # batch norm, with the batch statistics merged before this region
        vec = <const floating *>s.bn_vec + lay.vec_off
        bn_apply(lay.act, lay.alpha, inp + r0 * n, vec, vec + 2 * n, P + lay.b_off,
                 <floating *>lay.Z + r0 * n, <floating *>lay.A + r0 * n, r1 - r0, n)
    if lay.drop > 0:
        dropout_rows(<const floating *>lay.A, <floating *>lay.D, r0, r1, n,
                     fm_dropout_key(s.seed, l, s.step), lay.drop)


cdef inline int _forward_split(Step *s, int l, Py_ssize_t rows, int nt) noexcept nogil:
    """How dense layer l's forward GEMM (rows x n_in by n_in x n_out) is shared
    by the threads.  Each thread's single-threaded BLAS call packs both of its
    operands, so a split costs what the threads pack or write beyond one
    product (per thread past the first):
      SPLIT_ROWS     by rows of the batch: all of W again (n_in n_out);
      SPLIT_COLUMNS  by columns of W: all of the input again (rows n_in);
      SPLIT_INNER    along the inner dimension (thread t multiplies input
                     columns k0:k1 by rows k0:k1 of W): nothing twice, but a
                     partial rows x n_out product written and added back in
                     (2 rows n_out).
    The inner split is taken where it costs least, which is when the input is
    at least twice as wide as both the batch and the output (784 -> 256,
    256 -> 128 or 784 -> 64 on batches of 128: 3-12% faster steps on 2 threads
    than the others), and W has at least INNER_MIN_WEIGHTS weights (a smaller
    product is cheaper than the barrier and the adding back: 128 -> 10 on 64
    rows ran 2% slower split inner); otherwise columns when the layer is wider
    than the batch, else rows, which need no barrier."""
    cdef LayerSpec *lay = &s.layers[l]
    if nt <= 1 or rows <= 0 or lay.kind != KIND_DENSE:
        return SPLIT_ROWS
    if (2 * lay.n_out <= lay.n_in and 2 * rows <= lay.n_in
            and <Py_ssize_t>lay.n_in * lay.n_out >= INNER_MIN_WEIGHTS):
        return SPLIT_INNER
    return SPLIT_COLUMNS if lay.n_out > rows else SPLIT_ROWS


cdef inline void _forward_columns(Step *s, int l, const floating *inp, Py_ssize_t rows,
                                  Py_ssize_t r0, Py_ssize_t r1, int tid,
                                  int nt) noexcept nogil:
    """Layer l's forward pass with the GEMM split by columns of W (every thread
    of the region calls this, for the barriers), then bias, activation and
    dropout on this thread's rows [r0, r1)."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef int n = lay.n_out
    fm_barrier()   # every row of the input is in place (gathered, or the layer below)
    dense_forward_columns(inp, <const floating *>s.params + lay.w_off, <floating *>lay.Z, rows,
                          share_lo(n, tid, nt), share_lo(n, tid + 1, nt), lay.n_in, n)
    fm_barrier()   # every column of Z is in place
    _forward_epilogue(s, l, r0, r1, <const floating *>NULL)


cdef inline void _forward_inner(Step *s, int l, const floating *inp, Py_ssize_t rows,
                                Py_ssize_t r0, Py_ssize_t r1, int tid, int nt) noexcept nogil:
    """Layer l's forward pass with the GEMM split along its inner dimension
    (every thread of the region calls this, for the barriers): thread t's
    partial product over its share of the input columns goes to Z (t = 0) or to
    its partials buffer; then, on this thread's rows [r0, r1), the partials are
    added in thread order, and bias, activation and dropout follow."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef int n = lay.n_out, t
    cdef floating *z = <floating *>lay.Z
    cdef floating *part = <floating *>s.partials
    fm_barrier()   # every row of the input is in place (gathered, or the layer below)
    dense_forward_inner(inp, <const floating *>s.params + lay.w_off,
                        z if tid == 0 else part + (tid - 1) * rows * n, rows,
                        share_lo(lay.n_in, tid, nt), share_lo(lay.n_in, tid + 1, nt),
                        lay.n_in, n)
    fm_barrier()   # every partial product is in place
    for t in range(1, nt):
        add_to(z + r0 * n, part + ((t - 1) * rows + r0) * n, (r1 - r0) * n)
    _forward_epilogue(s, l, r0, r1, <const floating *>NULL)


cdef inline void _forward_epilogue(Step *s, int l, Py_ssize_t r0, Py_ssize_t r1,
                                   const floating *dummy) noexcept nogil:
    """Bias, activation and dropout of dense layer l on rows [r0, r1) of its Z."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef int n = lay.n_out
    bias_activation(lay.act, lay.alpha, <floating *>lay.Z + r0 * n, <floating *>lay.A + r0 * n,
                    <const floating *>s.params + lay.b_off, r1 - r0, n)
    if lay.drop > 0:
        dropout_rows(<const floating *>lay.A, <floating *>lay.D, r0, r1, n,
                     fm_dropout_key(s.seed, l, s.step), lay.drop)


cdef void _region_forward(Step *s, Batch *bt, int l0, int l1, bint backward, int tid, int nt,
                          const floating *dummy) noexcept nogil:
    """Layers [l0, l1) on this thread's rows.  When layer l1 is a batch norm,
    end with the statistics of its input on these rows; after the last layer,
    with the loss and (when `backward`) the row-local backward chain."""
    cdef Py_ssize_t rows = bt.rows
    cdef Py_ssize_t r0 = share_lo(rows, tid, nt), r1 = share_lo(rows, tid + 1, nt)
    cdef const floating *x = <const floating *>bt.x
    cdef const int64_t *labels = bt.labels
    cdef const floating *targets = <const floating *>bt.targets
    cdef const floating *w = <const floating *>bt.weights
    cdef int L = s.n_layers, l, n, split
    cdef LayerSpec *lay
    cdef double *part
    if bt.order != NULL:
        if l0 == 0:
            _gather(s, bt, r0, r1, dummy)
        x = <const floating *>s.xbuf
        labels = s.lbuf if labels != NULL else NULL
        targets = <const floating *>s.tbuf if targets != NULL else NULL
        w = <const floating *>s.wbuf if w != NULL else NULL
    for l in range(l0, l1):
        split = _forward_split(s, l, rows, nt)
        if split == SPLIT_INNER:
            _forward_inner(s, l, _input(s, x, l), rows, r0, r1, tid, nt)
        elif split == SPLIT_COLUMNS:
            _forward_columns(s, l, _input(s, x, l), rows, r0, r1, tid, nt)
        else:
            _forward_rows(s, l, _input(s, x, l), r0, r1)
    if l1 < L:
        # exact mean and M2 of the batch norm's input on these rows
        n = s.layers[l1].n_out
        part = s.bn_parts + 2 * tid * s.bn_width
        bn_block_stats(_input(s, x, l1) + r0 * n, r1 - r0, n, part, part + s.bn_width)
        return
    # loss and dLoss/dA of the last layer on the same rows
    lay = &s.layers[L - 1]
    s.loss_parts[tid] = _loss_rows(s, lay, labels, targets, w, rows, r0, r1)
    if backward:
        _backward_chain(s, x, L - 1, rows, r0, r1, tid, nt)


cdef inline void _finish_rows(Step *s, const floating *x, int l, Py_ssize_t r0, Py_ssize_t r1,
                              int tid) noexcept nogil:
    """Rows [r0, r1) of dZ[l] hold dLoss/dD (layer l's output after dropout):
    through the dropout mask (recomputed from its key) and f' into dLoss/dZ in
    place; maxout routes it to the maximal pieces (dP); a batch norm adds up
    dy and dy xhat over the rows for its merge."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef int n = lay.n_out
    cdef floating *dz = <floating *>lay.dZ
    cdef const floating *vec
    cdef double *part
    if lay.drop > 0:
        dropout_rows(<const floating *>dz, dz, r0, r1, n, fm_dropout_key(s.seed, l, s.step),
                     lay.drop)
    if lay.act != ACT_IDENTITY:
        activation_backward_rows(<floating *>lay.Z, <floating *>lay.A, dz, r0, r1, n, lay.act,
                                 lay.alpha)
    if lay.kind == KIND_MAXOUT:
        maxout_backward(<const floating *>lay.P + r0 * lay.n_z, dz + r0 * n,
                        <floating *>lay.dP + r0 * lay.n_z, r1 - r0, n, lay.pieces)
    elif lay.kind == KIND_BATCHNORM:
        vec = <const floating *>s.bn_vec + lay.vec_off
        part = s.bn_parts + 2 * tid * s.bn_width
        bn_grad_sums(_input(s, x, l) + r0 * n, vec, vec + n, dz + r0 * n, r1 - r0, n, part,
                     part + s.bn_width)


cdef inline void _input_grad_rows(Step *s, const floating *x, int l, Py_ssize_t r0,
                                  Py_ssize_t r1) noexcept nogil:
    """Rows [r0, r1) of dZ[l-1] = dLoss/d(input of layer l), from layer l's
    finished gradient (l >= 1)."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef floating *dx = <floating *>s.layers[l - 1].dZ
    cdef const floating *inp = <const floating *>s.layers[l - 1].D
    cdef const floating *P = <const floating *>s.params
    cdef const floating *vec
    cdef int n = lay.n_out
    if lay.kind == KIND_DENSE:      # dZ W^T
        dense_input_grad_rows(<floating *>lay.dZ, P + lay.w_off, dx, r0, r1, lay.n_in, n)
    elif lay.kind == KIND_MAXOUT:   # dP W^T
        dense_input_grad_rows(<floating *>lay.dP, P + lay.w_off, dx, r0, r1, lay.n_in, lay.n_z)
    elif lay.kind == KIND_PRELU:    # dA (1 if x > 0 else alpha)
        prelu_input_grad(inp + r0 * n, P + lay.w_off, <const floating *>lay.dZ + r0 * n,
                         dx + r0 * n, r1 - r0, n)
    else:                           # gamma/sqrt(var + eps) (dy - mean(dy) - xhat mean(dy xhat))
        vec = <const floating *>s.bn_vec + lay.vec_off
        bn_input_grad(inp + r0 * n, vec, vec + n, vec + 2 * n, vec + 3 * n, vec + 4 * n,
                      <const floating *>lay.dZ + r0 * n, dx + r0 * n, r1 - r0, n)


cdef inline void _input_grad_columns(Step *s, int l, Py_ssize_t rows, int tid, int nt,
                                     const floating *dummy) noexcept nogil:
    """dZ[l-1][:, c0:c1] = dZ[l] W[l][c0:c1, :]^T over all rows, this thread's
    columns of a dense layer's input gradient (every thread of the region calls
    this, for the barriers): as in _forward_split, when the input is wider than
    the batch, each thread then packs its share of W instead of all of it."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef Py_ssize_t c0 = share_lo(lay.n_in, tid, nt), c1 = share_lo(lay.n_in, tid + 1, nt)
    fm_barrier()   # every row of dZ[l] is finished
    dense_input_grad_columns(<const floating *>lay.dZ, <const floating *>s.params + lay.w_off,
                             <floating *>s.layers[l - 1].dZ, rows, c0, c1, lay.n_in, lay.n_out)
    fm_barrier()   # every column of dZ[l-1] is in place


cdef void _backward_chain(Step *s, const floating *x, int l, Py_ssize_t rows, Py_ssize_t r0,
                          Py_ssize_t r1, int tid, int nt) noexcept nogil:
    """Rows [r0, r1) of dZ[l] hold dLoss/dD[l]: finish them, then go down the
    layers while the work is row-local (input gradient rows, finished in turn;
    a dense layer whose input is wider than the batch has its input gradient
    split by columns between two barriers instead).  Stops after layer 0 or at
    a batch norm (its input gradient needs the sums over every row);
    _chain_stop(s, l) says where.  Every thread of the region runs the same chain."""
    while True:
        _finish_rows(s, x, l, r0, r1, tid)
        if l == 0 or s.layers[l].kind == KIND_BATCHNORM:
            return
        if nt > 1 and s.layers[l].kind == KIND_DENSE and s.layers[l].n_in > rows:
            _input_grad_columns(s, l, rows, tid, nt, x)
        else:
            _input_grad_rows(s, x, l, r0, r1)
        l -= 1


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
    for i in range(s.n_wspans):
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


cdef inline bint _inner_split_span(Step *s, int i, Py_ssize_t rows, int nt) noexcept nogil:
    """Whether weight span i belongs to a layer whose forward GEMM a step of
    `rows` rows on nt threads splits along the inner dimension."""
    return s.wspan_layer[i] >= 0 and _forward_split(s, s.wspan_layer[i], rows, nt) == SPLIT_INNER


cdef bint _update_share(Step *s, Py_ssize_t rows, int tid, int nt, double *pen,
                        const floating *dummy) noexcept nogil:
    """Thread tid's share of the optimizer update after a step of `rows` rows
    (0: no step to follow).  Of a weight matrix whose forward GEMM that step
    split along the inner dimension, the thread updates the rows of W it
    multiplied, which are the rows of dW it computed (dW is split along its
    longer side, n_in) and the rows it packs again next step, all in its own
    cache.  Everything else is shared in even contiguous chunks of what
    remains, in flat order.  Adds the penalty to pen[0]; returns whether every
    new parameter is finite."""
    cdef bint ok = True
    cdef Py_ssize_t rest = s.n_params, lo, hi, pos = 0, cur = 0, end, a, b
    cdef int i
    cdef LayerSpec *lay
    for i in range(s.n_wspans):
        if _inner_split_span(s, i, rows, nt):
            lay = &s.layers[s.wspan_layer[i]]
            ok &= _update_chunk(s, lay.w_off + share_lo(lay.n_in, tid, nt) * lay.n_out,
                                lay.w_off + share_lo(lay.n_in, tid + 1, nt) * lay.n_out,
                                pen, dummy)
            rest -= s.wspans[2 * i + 1] - s.wspans[2 * i]
    # positions [lo, hi) of the rest, which runs through the gaps between those matrices
    lo = chunk_lo(rest, tid, nt)
    hi = chunk_lo(rest, tid + 1, nt)
    for i in range(s.n_wspans + 1):
        if i < s.n_wspans and not _inner_split_span(s, i, rows, nt):
            continue
        end = s.wspans[2 * i] if i < s.n_wspans else s.n_params
        a = lo if lo > pos else pos                        # the gap [cur, end) holds
        b = hi if hi < pos + end - cur else pos + end - cur  # positions [pos, pos + end - cur)
        if a < b:
            ok &= _update_chunk(s, cur + a - pos, cur + b - pos, pen, dummy)
        pos += end - cur
        if i < s.n_wspans:
            cur = s.wspans[2 * i + 1]
    return ok


cdef bint _param_grad_share(Step *s, const floating *x, Py_ssize_t rows, int l, int tid,
                            int nt) noexcept nogil:
    """Thread tid's share of layer l's parameter gradient (all rows of its dZ are
    final); returns whether the share is finite.  Batch norms are merged serially."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef const floating *inp = _input(s, x, l)
    cdef floating *G = <floating *>s.grads
    cdef Py_ssize_t c0, c1
    if lay.kind == KIND_DENSE:
        return dense_param_grad_share(inp, <floating *>lay.dZ, G + lay.w_off, G + lay.b_off,
                                      rows, lay.n_in, lay.n_out, tid, nt)
    if lay.kind == KIND_MAXOUT:
        return dense_param_grad_share(inp, <floating *>lay.dP, G + lay.w_off, G + lay.b_off,
                                      rows, lay.n_in, lay.n_z, tid, nt)
    if lay.kind == KIND_PRELU:  # dalpha = sum_rows dA min(x, 0), split by columns
        c0 = share_lo(lay.n_out, tid, nt)
        c1 = share_lo(lay.n_out, tid + 1, nt)
        prelu_alpha_grad(inp, <const floating *>lay.dZ, G + lay.w_off, rows, lay.n_out, c0, c1)
        return block_finite(G + lay.w_off, 1, lay.n_out, c0, c1)
    return True


cdef void _region_backward(Step *s, const floating *x, Py_ssize_t rows, int lo, int hi, int bn,
                           int tid, int nt) noexcept nogil:
    """Shares of the parameter gradients of layers lo..hi (checked finite), and,
    when bn >= 1 (a batch norm whose sums are merged), this thread's rows of its
    input gradient and of the backward chain below it."""
    cdef int l
    cdef Py_ssize_t r0, r1
    for l in range(hi, lo - 1, -1):
        if not _param_grad_share(s, x, rows, l, tid, nt):
            s.finite_parts[tid] = 0
    if bn >= 1:
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        _input_grad_rows(s, x, bn, r0, r1)
        _backward_chain(s, x, bn - 1, rows, r0, r1, tid, nt)


cdef bint _all_finite_parts(Step *s, int nt) noexcept nogil:
    cdef int tid
    for tid in range(nt):
        if not s.finite_parts[tid]:
            return False
    return True


cdef void _merge_batch_stats(Step *s, int l, Py_ssize_t rows, int nt,
                             const floating *dummy) noexcept nogil:
    """Batch norm l's batch mean and biased variance from the threads' partial
    statistics (merged in thread order), and the vectors its passes use:
    center = mean, inv_std = 1 / sqrt(var + eps), scale = gamma inv_std."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef Py_ssize_t counts[MAX_THREADS]
    cdef Py_ssize_t c, n = lay.n_out
    cdef int tid
    cdef double *mean = s.bn_stats + lay.stat_off
    cdef double *var = mean + n
    cdef floating *vec = <floating *>s.bn_vec + lay.vec_off
    cdef const floating *gamma = <const floating *>s.params + lay.w_off
    cdef double inv_std
    for tid in range(nt):
        counts[tid] = share_lo(rows, tid + 1, nt) - share_lo(rows, tid, nt)
    fm_bn_merge_stats(nt, counts, s.bn_parts, s.bn_parts + s.bn_width, 2 * s.bn_width, n,
                      mean, var)
    for c in range(n):
        inv_std = 1.0 / sqrt(var[c] + lay.eps)
        vec[c] = <floating>mean[c]
        vec[n + c] = <floating>inv_std
        vec[2 * n + c] = <floating>(gamma[c] * inv_std)


cdef bint _merge_batch_grads(Step *s, int l, Py_ssize_t rows, int nt,
                             const floating *dummy) noexcept nogil:
    """Batch norm l's dbeta = sum dy and dgamma = sum dy xhat from the threads'
    partial sums (in thread order) into the gradient buffer, and the means its
    input gradient uses; returns whether they are finite."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef Py_ssize_t c, n = lay.n_out, w = s.bn_width
    cdef int tid
    cdef double sum_dy, sum_dyx
    cdef floating *vec = <floating *>s.bn_vec + lay.vec_off
    cdef floating *G = <floating *>s.grads
    cdef bint finite = True
    for c in range(n):
        sum_dy = 0.0
        sum_dyx = 0.0
        for tid in range(nt):
            sum_dy += s.bn_parts[2 * tid * w + c]
            sum_dyx += s.bn_parts[(2 * tid + 1) * w + c]
        G[lay.b_off + c] = <floating>sum_dy
        G[lay.w_off + c] = <floating>sum_dyx
        vec[3 * n + c] = <floating>(sum_dy / rows)
        vec[4 * n + c] = <floating>(sum_dyx / rows)
        finite = finite and isfinite(sum_dy) and isfinite(sum_dyx)
    return finite


cdef void _update_running_stats(Step *s, const floating *dummy) noexcept nogil:
    """Fold the batch statistics of the last training step into the batch
    norms' running averages, once:
        running_mean = momentum running_mean + (1 - momentum) mean
        running_var  = momentum running_var + (1 - momentum) var n / (n - 1)
    (the unbiased batch variance, as PyTorch; normalization uses the biased one)."""
    cdef int l
    cdef Py_ssize_t c, n
    cdef double m, corr
    cdef floating *R = <floating *>s.running
    cdef const double *mean
    cdef LayerSpec *lay
    if not s.stats_pending:
        return
    s.stats_pending = False
    corr = <double>s.stats_rows / (s.stats_rows - 1) if s.stats_rows > 1 else 1.0
    for l in range(s.n_layers):
        lay = &s.layers[l]
        if lay.kind != KIND_BATCHNORM:
            continue
        n = lay.n_out
        m = lay.momentum
        mean = s.bn_stats + lay.stat_off
        for c in range(n):
            R[lay.rm_off + c] = <floating>(m * R[lay.rm_off + c] + (1.0 - m) * mean[c])
            R[lay.rv_off + c] = <floating>(m * R[lay.rv_off + c] + (1.0 - m) * mean[n + c] * corr)


cdef double _step(Step *s, Batch *bt, bint backward, bint update, int nt,
                  const floating *dummy) noexcept nogil:
    """Forward + loss (+ backward (+ update)) of one batch; returns the mean loss
    and sets s.status.  Nothing is updated unless loss and gradient are finite."""
    cdef int tid, L = s.n_layers, l0, l1, lo, hi, bn, stop
    cdef double total = 0.0
    cdef bint finite = True
    cdef const floating *x
    cdef unsigned int fpu
    s.status = STATUS_OK
    s.stats_pending = False  # this pass overwrites the batch statistics
    # forward: one region per run of layers between batch norms
    l0 = 0
    l1 = _next_batchnorm(s, 0)
    while True:
        with parallel(num_threads=nt):
            fpu = flush_denormals_begin()
            _region_forward(s, bt, l0, l1, backward, threadid(), nt, dummy)
            flush_denormals_end(fpu)
        if l1 == L:
            break
        _merge_batch_stats(s, l1, bt.rows, nt, dummy)
        l0 = l1
        l1 = _next_batchnorm(s, l1 + 1)
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
    # the last region ran the backward chain down to `stop`; layers above it have
    # their dZ complete and their parameter gradients pending down to `hi`
    hi = L - 1
    stop = _chain_stop(s, L - 1)
    while True:
        bn = -1
        lo = stop
        if s.layers[stop].kind == KIND_BATCHNORM:
            finite = _merge_batch_grads(s, stop, bt.rows, nt, dummy) and finite
            lo = stop + 1
            bn = stop
        if lo <= hi or bn >= 1:
            with parallel(num_threads=nt):
                fpu = flush_denormals_begin()
                _region_backward(s, x, bt.rows, lo, hi, bn, threadid(), nt)
                flush_denormals_end(fpu)
        if bn < 1:
            break
        hi = stop - 1
        stop = _chain_stop(s, stop - 1)
    if not finite or not _all_finite_parts(s, nt):
        s.status = STATUS_GRAD_NOT_FINITE
        return total
    if s.n_bn > 0:
        s.stats_pending = True
        s.stats_rows = bt.rows
    if update:
        total += _apply_update(s, bt.rows, nt, dummy)  # the loss includes the weight penalty
        _update_running_stats(s, dummy)
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


cdef double _apply_update(Step *s, Py_ssize_t rows, int nt, const floating *dummy) noexcept nogil:
    """The optimizer update of the whole flat buffer, from the stored gradient
    (clipped, plus the penalty gradient on weight matrices), then the max-norm
    constraint; sets s.status when a new parameter is not finite.  `rows` is
    the batch of the step it follows (0: none), which the threads' shares
    follow (_update_share).  Returns the penalty of the weights before the
    update (0 without one)."""
    cdef int tid, l
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
        s.norm_parts[tid] = 0.0
        s.finite_parts[tid] = _update_share(s, rows, tid, nt, &s.norm_parts[tid], dummy)
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
                if lay.kind == KIND_DENSE or lay.kind == KIND_MAXOUT:  # W (n_in, n_z)
                    max_norm_columns(<floating *>s.params + lay.w_off, lay.n_in, lay.n_z,
                                     share_lo(lay.n_z, tid, nt), share_lo(lay.n_z, tid + 1, nt),
                                     s.max_norm)
            flush_denormals_end(fpu)
    return pen


cdef void _inference_vectors(Step *s, floating *vec) noexcept nogil:
    """Each batch norm's inference map, laid out like Step.bn_vec:
    center = running mean, scale = gamma / sqrt(running var + eps)."""
    cdef int l
    cdef Py_ssize_t c, n
    cdef LayerSpec *lay
    cdef const floating *R = <const floating *>s.running
    cdef const floating *gamma
    for l in range(s.n_layers):
        lay = &s.layers[l]
        if lay.kind != KIND_BATCHNORM:
            continue
        n = lay.n_out
        gamma = <const floating *>s.params + lay.w_off
        for c in range(n):
            vec[lay.vec_off + c] = R[lay.rm_off + c]
            vec[lay.vec_off + 2 * n + c] = <floating>(gamma[c] / sqrt(<double>R[lay.rv_off + c]
                                                                   + lay.eps))


cdef inline void _predict_rows(Step *s, int l, const floating *inp, floating *dst,
                               floating *pieces, const floating *vec,
                               Py_ssize_t m) noexcept nogil:
    """Layer l at inference on m rows: dst = layer(inp), without dropout; batch
    norms use their running statistics (vec), maxout computes its pieces in
    `pieces` (not overlapping dst)."""
    cdef LayerSpec *lay = &s.layers[l]
    cdef const floating *P = <const floating *>s.params
    cdef int n = lay.n_out
    if lay.kind == KIND_DENSE:
        dense_forward_rows(inp, P + lay.w_off, P + lay.b_off, dst, dst, 0, m, lay.n_in, n,
                           lay.act, lay.alpha)
    elif lay.kind == KIND_MAXOUT:
        maxout_forward_rows(inp, P + lay.w_off, P + lay.b_off, pieces, dst, 0, m, lay.n_in, n,
                            lay.pieces)
    elif lay.kind == KIND_PRELU:
        prelu_forward(inp, P + lay.w_off, dst, m, n)
    else:
        bn_apply(lay.act, lay.alpha, inp, vec + lay.vec_off, vec + lay.vec_off + 2 * n,
                 P + lay.b_off, dst, dst, m, n)


cdef int _predict(Step *s, const floating *x, floating *out, Py_ssize_t rows,
                  bint output_transform, int nt, int width) noexcept nogil:
    """Inference: out = network(x), each thread on its share of the rows in
    blocks of up to PREDICT_BLOCK rows, ping-ponging between two scratch blocks
    (pre-activations are not kept; a third holds maxout pieces).  Scratch (and
    the batch norms' inference maps) is per call and per thread, sized to the
    thread's rows, so concurrent predictions are safe and a few rows allocate
    little.  Returns 0, or -1 when scratch memory could not be allocated."""
    cdef int tid, l, L = s.n_layers
    cdef int failed = 0
    cdef int *failed_p = &failed
    cdef unsigned int fpu
    cdef Py_ssize_t r0, r1, b0, m, block_rows, block
    cdef floating *scratch
    cdef floating *slot
    cdef floating *dst
    cdef const floating *inp
    cdef LayerSpec *lay
    with parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        r0 = share_lo(rows, tid, nt)
        r1 = share_lo(rows, tid + 1, nt)
        block_rows = max(1, min(r1 - r0, PREDICT_BLOCK, PREDICT_SCRATCH // width))
        block = block_rows * width
        scratch = <floating *>malloc((3 * block + s.bn_vec_len) * sizeof(floating))
        if scratch == NULL:
            failed_p[0] = 1
        else:
            _inference_vectors(s, scratch + 3 * block)
        b0 = r0
        while b0 < r1 and scratch != NULL:
            m = r1 - b0 if r1 - b0 < block_rows else block_rows
            inp = x + b0 * s.layers[0].n_in
            for l in range(L):
                lay = &s.layers[l]
                slot = scratch + (l % 2) * block
                dst = out + b0 * lay.n_out if l == L - 1 else slot
                _predict_rows(s, l, inp, dst, scratch + 2 * block, scratch + 3 * block, m)
                inp = dst
            if output_transform:
                loss_output(s.loss_kind, out + b0 * s.layers[L - 1].n_out,
                            out + b0 * s.layers[L - 1].n_out, m, s.layers[L - 1].n_out)
            b0 = b0 + m
        free(scratch)
        flush_denormals_end(fpu)
    return -failed


cdef int _predict_columns(Step *s, const floating *x, floating *out, Py_ssize_t rows,
                          bint output_transform, int nt, int width) noexcept nogil:
    """Inference of a few rows of a network of dense layers with each layer's
    product split by columns of W across the threads, a barrier between layers.
    Few rows make a product bound by reading W: split by rows, every thread
    would read all of W; split by columns, each reads its share.  Column shares
    are whole multiples of 16 (even, for bipolar activations' column parity).
    Scratch is per call.  Returns 0, or -1 when it could not be allocated."""
    cdef int tid, l, L = s.n_layers
    cdef unsigned int fpu
    cdef Py_ssize_t r, c0, c1, n
    cdef const floating *P = <const floating *>s.params
    cdef floating *scratch = <floating *>malloc(2 * rows * width * sizeof(floating))
    cdef floating *dst
    cdef const floating *inp
    cdef LayerSpec *lay
    if scratch == NULL:
        return -1
    with parallel(num_threads=nt):
        fpu = flush_denormals_begin()
        tid = threadid()
        inp = x
        for l in range(L):
            lay = &s.layers[l]
            n = lay.n_out
            dst = out if l == L - 1 else scratch + (l % 2) * rows * width
            c0 = chunk_lo(n, tid, nt)
            c1 = chunk_lo(n, tid + 1, nt)
            if c1 > c0:
                dense_forward_columns(inp, P + lay.w_off, dst, rows, c0, c1, lay.n_in, <int>n)
                for r in range(rows):
                    bias_activation(lay.act, lay.alpha, dst + r * n + c0, dst + r * n + c0,
                                    P + lay.b_off + c0, 1, c1 - c0)
            fm_barrier()   # every column of this layer is in place for the next
            inp = dst
        if output_transform and tid == 0:
            loss_output(s.loss_kind, out, out, rows, s.layers[L - 1].n_out)
        flush_denormals_end(fpu)
    free(scratch)
    return 0


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
    layers : list of dict (a dense layer may also be the 7-tuple
        (n_in, n_out, act, alpha, w_off, b_off, drop)), applied in order, with keys
        kind : "dense", "maxout", "batchnorm" or "prelu"
        n_in, n_out : input and output units (batchnorm, prelu: n_in == n_out)
        act, alpha : activation code (fastmlp._kernels.activations) and its
            parameter, after a dense or batchnorm layer (default 0: identity)
        w_off : offset in the flat buffers of W (n_in, n_out * pieces) (dense,
            maxout), gamma (n_out,) (batchnorm) or the slopes (n_out,) (prelu)
        b_off : offset of b (n_out * pieces,) (dense, maxout) or beta (batchnorm)
        pieces : maxout's linear pieces per unit (>= 2; piece j of unit u is
            column j * n_out + u of W and b)
        rm_off, rv_off : batchnorm: offsets of its running mean and variance
            in `running`
        momentum, eps : batchnorm (default 0.9, 1e-5)
        drop : rate of inverted dropout on the layer's output during training
            (default 0: none; must be 0 on the last layer)
    params, grads : ndarray of shape (n_params,), float32 or float64
        The model's flat buffers; the plan reads and writes them in place.
    loss_kind : int
        The loss's code: its index in fastmlp._kernels.losses.LOSSES.
    loss_param : float
        The loss's parameter (huber's delta, mape's epsilon; > 0 for those two).
    seed : int, keys the dropout masks with (layer, step, row, unit)
    running : ndarray of shape (n_state,) like params, or None
        The batch norms' running statistics (not parameters: the optimizer
        never sees them); updated in place by every applied update.
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
    cdef object _partials     # backs s.partials
    cdef object _running, _bn_buffers
    cdef readonly list specs     # the complete layer specs (dicts)

    def __cinit__(self):
        self.s.layers = NULL
        self.s.loss_parts = NULL
        self.s.finite_parts = NULL
        self.s.wspans = NULL
        self.s.wspan_layer = NULL
        self.s.norm_parts = NULL
        self.s.partials = NULL

    def __init__(self, list layers, params, grads, int loss_kind, double loss_param=0.0,
                 seed=0, running=None):
        cdef int i, L = len(layers)
        cdef Py_ssize_t vec_len = 0, stat_len = 0, bn_width = 0, n_z
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
        specs = [layer_spec(i, spec, FM_N_ACTIVATIONS) for i, spec in enumerate(layers)]
        n_bn = sum(spec["kind"] == "batchnorm" for spec in specs)
        if n_bn and (running is None or running.dtype != params.dtype or running.ndim != 1
                     or not running.flags.c_contiguous or not running.flags.writeable):
            raise ValueError("batchnorm layers need `running`: a writeable contiguous 1-D "
                             "array of the parameters' dtype")
        self.dtype = params.dtype
        self.is_double = params.dtype == np.float64
        self.typenum = cnp.NPY_FLOAT64 if self.is_double else cnp.NPY_FLOAT32
        self._params = params
        self._grads = grads
        self._running = running
        self.specs = specs
        self.s.layers = <LayerSpec *>malloc(L * sizeof(LayerSpec))
        self.s.loss_parts = <double *>malloc(MAX_THREADS * sizeof(double))
        self.s.finite_parts = <int *>malloc(MAX_THREADS * sizeof(int))
        self.s.norm_parts = <double *>malloc(MAX_THREADS * sizeof(double))
        self.s.wspans = <Py_ssize_t *>malloc(2 * L * sizeof(Py_ssize_t))
        self.s.wspan_layer = <int *>malloc(L * sizeof(int))
        if self.s.layers == NULL or self.s.loss_parts == NULL or self.s.finite_parts == NULL \
                or self.s.norm_parts == NULL or self.s.wspans == NULL \
                or self.s.wspan_layer == NULL:
            raise MemoryError()
        self.s.n_layers = L
        self.s.params = _address(params)
        self.s.grads = _address(grads)
        self.s.n_params = params.shape[0]
        self.s.loss_kind = loss_kind
        self.s.seed = <unsigned long long>(int(seed) & 0xffffffffffffffff)
        self.s.loss_param = loss_param
        self.width = 1
        for i, spec in enumerate(specs):
            n_in, n_out, kind = spec["n_in"], spec["n_out"], spec["kind"]
            for off, size, _ in spec_spans(spec):
                if off < 0 or off + size > params.shape[0]:
                    raise ValueError(f"layer {i} does not fit in the parameter buffer")
            if kind == "batchnorm":
                for off in (spec["rm_off"], spec["rv_off"]):
                    if off < 0 or off + n_out > running.shape[0]:
                        raise ValueError(f"layer {i} does not fit in the running-statistics "
                                         "buffer")
            if i > 0 and n_in != self.s.layers[i - 1].n_out:
                raise ValueError(f"layer {i} expects {n_in} inputs, the previous layer has "
                                 f"{self.s.layers[i - 1].n_out} outputs")
            if spec["drop"] > 0 and i == L - 1:
                raise ValueError(f"layer {i}: dropout rate {spec['drop']} must be in [0, 1), "
                                 "and 0 on the last layer")
            n_z = n_out * spec["pieces"]
            self.s.layers[i] = LayerSpec(
                kind=KINDS.index(kind), n_in=n_in, n_out=n_out, n_z=n_z, pieces=spec["pieces"],
                act=spec["act"], alpha=spec["alpha"], w_off=spec["w_off"], b_off=spec["b_off"],
                rm_off=spec["rm_off"], rv_off=spec["rv_off"],
                vec_off=vec_len if kind == "batchnorm" else 0,
                stat_off=stat_len if kind == "batchnorm" else 0,
                momentum=spec["momentum"], eps=spec["eps"], drop=spec["drop"],
                Z=NULL, A=NULL, D=NULL, dZ=NULL, P=NULL, dP=NULL)
            if kind == "batchnorm":
                vec_len += 5 * n_out
                stat_len += 2 * n_out
                bn_width = max(bn_width, n_out)
            self.width = max(self.width, n_z)
        # batch-norm scratch: per-feature vectors, statistics, per-thread partials
        bn_vec = np.zeros(max(vec_len, 1), dtype=self.dtype)
        bn_stats = np.zeros(max(stat_len, 1))
        bn_parts = np.zeros(max(2 * MAX_THREADS * bn_width, 1))
        self._bn_buffers = (bn_vec, bn_stats, bn_parts)
        self.s.n_bn = n_bn
        self.s.running = _address(running) if n_bn else NULL
        self.s.bn_vec = _address(bn_vec)
        self.s.bn_stats = <double *>_address(bn_stats)
        self.s.bn_parts = <double *>_address(bn_parts)
        self.s.bn_width = bn_width
        self.s.bn_vec_len = vec_len
        self.s.stats_pending = False
        self.s.stats_rows = 0
        # weight matrices (dense, maxout W): the penalty and decay apply to these only
        spans = sorted((off, off + size, layer) for layer, spec in enumerate(specs)
                       for off, size, is_weight in spec_spans(spec) if is_weight)
        for i, (start, end, layer) in enumerate(spans):
            if i > 0 and start < spans[i - 1][1]:
                raise ValueError("weight matrices overlap in the parameter buffer")
            self.s.wspans[2 * i], self.s.wspans[2 * i + 1] = start, end
            self.s.wspan_layer[i] = layer
        self.s.n_wspans = len(spans)
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
        free(self.s.wspan_layer)

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
            for i in range(self.s.n_wspans):
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

    @property
    def decay_spans(self):
        """[(offset, size), ...] of the weight matrices (dense and maxout W) in the
        flat buffers: the parameters weight decay applies to (not biases, batch
        norm's gamma and beta, or PReLU's slopes)."""
        return [(off, size) for spec in self.specs
                for off, size, is_weight in spec_spans(spec) if is_weight]

    # -- buffers --------------------------------------------------------------

    def ensure_capacity(self, Py_ssize_t rows):
        """Allocate the per-layer buffers for batches of up to `rows` rows
        (only when larger than before: steady-state steps allocate nothing)."""
        cdef int i
        if rows <= self.capacity:
            return
        bufs = []
        # 64-byte aligned, like the flat parameter buffers: vector loads and
        # stores then do not straddle cache lines (the mnist step ran ~2% faster)
        for i in range(self.s.n_layers):
            lay = &self.s.layers[i]
            shape = (rows, lay.n_out)
            if lay.kind == KIND_DENSE or lay.kind == KIND_BATCHNORM:
                Z = aligned_empty(shape, self.dtype)
                A = Z if lay.act == ACT_IDENTITY else aligned_empty(shape, self.dtype)
            else:  # maxout, prelu: no pre-activation of their own
                A = Z = aligned_empty(shape, self.dtype)
            D = A if lay.drop == 0 else aligned_empty(shape, self.dtype)
            dZ = aligned_empty(shape, self.dtype)
            lay.Z, lay.A, lay.D, lay.dZ = _address(Z), _address(A), _address(D), _address(dZ)
            P = dP = None
            if lay.kind == KIND_MAXOUT:
                P = aligned_empty((rows, lay.n_z), self.dtype)
                dP = aligned_empty((rows, lay.n_z), self.dtype)
                lay.P, lay.dP = _address(P), _address(dP)
            bufs.append((Z, A, D, dZ, P, dP))
        self._layer_buffers = bufs
        self.capacity = rows

    def _ensure_gather(self, Py_ssize_t rows):
        if rows <= self.gather_capacity:
            return
        n_in, k = self.s.layers[0].n_in, self.s.layers[self.s.n_layers - 1].n_out
        xb = aligned_empty((rows, n_in), self.dtype)
        lb = np.empty(rows, dtype=np.int64)
        tb = aligned_empty((rows, k), self.dtype)
        wb = aligned_empty(rows, self.dtype)
        self.s.xbuf, self.s.lbuf = _address(xb), <int64_t *>_address(lb)
        self.s.tbuf, self.s.wbuf = _address(tb), _address(wb)
        self._gather_buffers = (xb, lb, tb, wb)
        self.gather_capacity = rows

    def _ensure_partials(self, Py_ssize_t rows, int nt):
        """Room for the partial products of the layers that a step of `rows`
        rows on nt threads splits along the inner dimension (threads 1..nt-1
        each write one rows x n_out product)."""
        cdef int l
        cdef Py_ssize_t need = 0
        for l in range(self.s.n_layers):
            if _forward_split(&self.s, l, rows, nt) == SPLIT_INNER:
                need = max(need, (nt - 1) * rows * self.s.layers[l].n_out)
        if self._partials is not None and need <= self._partials.shape[0]:
            return
        if need > 0:
            self._partials = aligned_empty(need, self.dtype)
            self.s.partials = _address(self._partials)

    # -- steps ----------------------------------------------------------------

    cdef double _macs_per_row(self):
        """Multiply-adds of the forward GEMMs per row (at least 1)."""
        cdef double work = 1
        cdef int i
        for i in range(self.s.n_layers):
            if self.s.layers[i].kind == KIND_DENSE or self.s.layers[i].kind == KIND_MAXOUT:
                work += <double>self.s.layers[i].n_in * self.s.layers[i].n_z
        return work

    cdef bint _predict_split(self, Py_ssize_t rows, int *nt):
        """How predict divides `rows` rows between threads: sets *nt and returns
        True for a split by columns of W, False for a split by rows.

        Split by rows, every thread's GEMMs pack all of W; split by columns,
        each packs its share of W and all of the (few) rows.  A network of dense
        layers is split by columns when the rows are fewer than half its widest
        layer (2 threads, one-row to 2048-row predicts of a 1024-2048-2048-10
        and a 784-256-128-10 net: columns won below that and lost above it), or
        when a split by rows would leave threads idle that the multiply-adds
        would employ (each thread gets MIN_ROWS_PER_THREAD rows); and when all
        rows of the widest layer fit in PREDICT_SCRATCH (no blocks there)."""
        cdef int i, by_work
        cdef bint all_dense = True
        nt[0] = self._threads(rows)
        for i in range(self.s.n_layers):
            all_dense = all_dense and self.s.layers[i].kind == KIND_DENSE
        if all_dense and rows * self.width <= PREDICT_SCRATCH:
            by_work = min(threads_for(self._macs_per_row() * rows, GEMM_GRAIN), MAX_THREADS)
            if by_work > 1 and (by_work > nt[0] or 2 * rows < self.width):
                nt[0] = by_work
                return True
        return False

    def train_split(self, Py_ssize_t rows):
        """(["rows", "columns" or "inner" for each layer], threads): how a
        training step on `rows` rows would share each layer's forward GEMM under
        the current thread setting (for tests and diagnostics; only dense layers
        are ever split other than by rows)."""
        cdef int nt = self._threads(rows), l
        names = ("rows", "columns", "inner")
        return [names[_forward_split(&self.s, l, rows, nt)] for l in range(self.s.n_layers)], nt

    def predict_split(self, Py_ssize_t rows):
        """("columns" or "rows", threads): how predict would divide `rows` rows
        under the current thread setting (for tests and diagnostics)."""
        cdef int nt
        cdef bint by_columns = self._predict_split(rows, &nt)
        return ("columns" if by_columns else "rows"), nt

    cdef int _threads(self, Py_ssize_t rows):
        """Threads for a batch of `rows`: enough multiply-adds per thread
        (threads_for) and at least MIN_ROWS_PER_THREAD rows each, since GEMMs on
        thinner row blocks run far below the BLAS's peak."""
        return max(1, min(threads_for(self._macs_per_row() * rows, GEMM_GRAIN),
                          rows // MIN_ROWS_PER_THREAD, MAX_THREADS))

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
        if self.s.n_bn > 0 and bt.rows < 2:
            raise ValueError("batch normalization needs at least 2 samples per training batch")
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
        self._ensure_partials(bt.rows, nt)
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
        penalty gradient are applied here.  The batch norms' running statistics
        take in the batch statistics of the last successful forward_backward
        (once).  Returns the weight penalty before the update, which train_step
        adds to the loss it returns."""
        cdef int nt = min(threads_for(<double>self.s.n_params / 2, ELEMENTWISE_GRAIN), MAX_THREADS)
        cdef double pen
        self.s.status = STATUS_OK
        with nogil:
            if self.is_double:
                pen = _apply_update(&self.s, 0, nt, <const double *>NULL)
                _update_running_stats(&self.s, <const double *>NULL)
            else:
                pen = _apply_update(&self.s, 0, nt, <const float *>NULL)
                _update_running_stats(&self.s, <const float *>NULL)
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
        raised between two batches (within about a millisecond of work), so the
        model is consistent."""
        cdef Py_ssize_t n = order.shape[0], start, i = 0, n_batches
        cdef Batch bt = self._batch(X, y, sample_weight, order)
        cdef const int64_t *full_order = bt.order
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        n_batches = (n + batch_size - 1) // batch_size
        if self.s.n_bn > 0 and n - (n_batches - 1) * batch_size < 2:
            raise ValueError(f"batch normalization needs at least 2 samples per training batch: "
                             f"{n} samples in batches of {batch_size} leave one of 1; choose "
                             "another batch_size")
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
        # Batches run in groups of about SIGNAL_WORK multiply-adds without the GIL
        # and with the BLAS set up once: a tiny net's step is ~20 us, so per-batch
        # Python and BLAS calls would show; larger nets check signals every batch.
        cdef int nt_full = self._threads(min(batch_size, n))
        cdef int nt_last = self._threads(n - (n_batches - 1) * batch_size), nt
        self._ensure_partials(min(batch_size, n), nt_full)
        self._ensure_partials(n - (n_batches - 1) * batch_size, nt_last)
        cdef Py_ssize_t group = max(1, <Py_ssize_t>(SIGNAL_WORK
                                                    / (self._macs_per_row() * min(batch_size, n))))
        cdef Py_ssize_t stop
        cdef double *loss_out = &losses[0]
        cdef const double *lr_in = &lrs[0] if lrs is not None else NULL
        cdef bint failed = False
        blas_enter()
        try:
            while i < n_batches and not failed:
                stop = min(n_batches, i + group)
                with nogil:
                    while i < stop:
                        start = i * batch_size
                        bt.order = full_order + start
                        bt.rows = min(batch_size, n - start)
                        if lr_in != NULL:
                            self.s.lr = lr_in[i]
                        nt = nt_last if i == n_batches - 1 else nt_full
                        if self.is_double:
                            loss_out[i] = _step(&self.s, &bt, True, True, nt,
                                                <const double *>NULL)
                        else:
                            loss_out[i] = _step(&self.s, &bt, True, True, nt,
                                                <const float *>NULL)
                        i += 1
                        if self.s.status != STATUS_OK:
                            failed = True
                            break
                PyErr_CheckSignals()
        finally:
            blas_leave()
        return i

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
        cdef int nt
        cdef int width = self.width, status
        cdef bint by_columns = self._predict_split(rows, &nt)
        blas_enter()
        with nogil:
            if by_columns and self.is_double:
                status = _predict_columns(&self.s, <double *>xp, <double *>op, rows,
                                          output_transform, nt, width)
            elif by_columns:
                status = _predict_columns(&self.s, <float *>xp, <float *>op, rows,
                                          output_transform, nt, width)
            elif self.is_double:
                status = _predict(&self.s, <double *>xp, <double *>op, rows, output_transform,
                                  nt, width)
            else:
                status = _predict(&self.s, <float *>xp, <float *>op, rows, output_transform,
                                  nt, width)
        blas_leave()
        if status != 0:
            raise MemoryError("could not allocate scratch memory for predict")
        return out
