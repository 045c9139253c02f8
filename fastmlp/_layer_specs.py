"""Layer specs of a Plan: the description of one layer that the model builds and
both plans (native and NumPy twin) read.

A spec is a dict (a dense layer may also be the 7-tuple
``(n_in, n_out, act, alpha, w_off, b_off, drop)``) with the keys

kind : "dense", "maxout", "batchnorm" or "prelu"
n_in, n_out : input and output units (batchnorm, prelu: n_in == n_out)
act, alpha : activation code (index into ACTIVATIONS) and its parameter, after
    a dense or batchnorm layer (default 0: identity)
w_off : offset in the flat parameter buffer of W (n_in, n_out * pieces) (dense,
    maxout), gamma (n_out,) (batchnorm) or the slopes (n_out,) (prelu)
b_off : offset of b (n_out * pieces,) (dense, maxout) or beta (n_out,) (batchnorm)
pieces : maxout's linear pieces per unit (>= 2); piece j of unit u is column
    j * n_out + u of W and b (piece-major).  1 for the other kinds.
rm_off, rv_off : batchnorm: offsets of its running mean and variance in the
    running-statistics buffer
momentum, eps : batchnorm (default 0.9 and 1e-5)
drop : rate of inverted dropout on the layer's output during training
    (default 0: none; must be 0 on the last layer)
"""

__all__ = ["KINDS", "layer_spec", "spec_spans"]

KINDS = ("dense", "maxout", "batchnorm", "prelu")   # index = the native plan's kind code

_DEFAULTS = {"act": 0, "alpha": 0.0, "b_off": 0, "pieces": 1, "rm_off": 0, "rv_off": 0,
             "momentum": 0.9, "eps": 1e-5, "drop": 0.0}
_REQUIRED = ("kind", "n_in", "n_out", "w_off")
_TUPLE_KEYS = ("n_in", "n_out", "act", "alpha", "w_off", "b_off", "drop")


def layer_spec(i, spec, n_activations):
    """Spec `spec` of layer i, checked and completed with the defaults (a new dict).

    n_activations : number of activation codes the plan knows
    """
    if isinstance(spec, tuple):
        if len(spec) != len(_TUPLE_KEYS):
            raise ValueError(f"layer {i}: a tuple spec is (n_in, n_out, act, alpha, w_off, "
                             "b_off, drop)")
        spec = dict(zip(_TUPLE_KEYS, spec), kind="dense")
    if not isinstance(spec, dict):
        raise ValueError(f"layer {i}: a spec is a dict or a 7-tuple, got {spec!r}")
    unknown = set(spec) - set(_DEFAULTS) - set(_REQUIRED)
    if unknown:
        raise ValueError(f"layer {i}: unknown spec keys {sorted(unknown)}")
    missing = [key for key in _REQUIRED if key not in spec]
    if missing:
        raise ValueError(f"layer {i}: the spec needs {missing}")
    full = dict(_DEFAULTS, **spec)
    kind = full["kind"]
    if kind not in KINDS:
        raise ValueError(f"layer {i}: kind must be one of {KINDS}, got {kind!r}")
    if full["n_in"] < 1 or full["n_out"] < 1:
        raise ValueError(f"layer {i}: n_in and n_out must be >= 1")
    if not 0 <= full["act"] < n_activations:
        raise ValueError(f"layer {i}: unknown activation code {full['act']}")
    if kind == "maxout" and full["pieces"] < 2:
        raise ValueError(f"layer {i}: maxout needs pieces >= 2, got {full['pieces']}")
    if kind != "maxout" and full["pieces"] != 1:
        raise ValueError(f"layer {i}: only maxout layers have pieces")
    if kind in ("maxout", "prelu") and full["act"] != 0:
        raise ValueError(f"layer {i}: a {kind} layer has no activation of its own")
    if kind in ("batchnorm", "prelu") and full["n_in"] != full["n_out"]:
        raise ValueError(f"layer {i}: a {kind} layer keeps its width (n_in == n_out)")
    if kind == "batchnorm" and not (full["eps"] > 0 and 0.0 <= full["momentum"] <= 1.0):
        raise ValueError(f"layer {i}: batchnorm needs eps > 0 and momentum in [0, 1]")
    if not 0.0 <= full["drop"] < 1.0:
        raise ValueError(f"layer {i}: dropout rate {full['drop']} must be in [0, 1), and 0 "
                         "on the last layer")
    return full


def spec_spans(spec):
    """[(offset, size, is_weight_matrix), ...]: the flat-buffer spans of a complete
    spec's parameter arrays, in get_weights order (W, b / gamma, beta / slopes)."""
    n_in, n_out, kind = spec["n_in"], spec["n_out"], spec["kind"]
    if kind in ("dense", "maxout"):
        n_z = n_out * spec["pieces"]
        return [(spec["w_off"], n_in * n_z, True), (spec["b_off"], n_z, False)]
    if kind == "batchnorm":
        return [(spec["w_off"], n_out, False), (spec["b_off"], n_out, False)]
    return [(spec["w_off"], n_out, False)]
