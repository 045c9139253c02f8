"""Saving and loading models: a JSON header and raw arrays; loading runs no code.

File layout (integers little-endian)::

    offset        size         content
    0             8            magic  b"\\x93FMLP\\r\\n\\x1a"
    8             4            format version (uint32), 1
    12            4            CRC-32 of the header (uint32)
    16            8            header length H in bytes (uint64)
    24            H            header: UTF-8 JSON, space-padded so the data
                               starts on a 64-byte boundary
    24 + H        ...          data: the arrays, raw little-endian, each at the
                               offset (from the start of the data) the header gives

The header holds ``model`` (the architecture: layers by class name with their
configuration, input_dim, dtype, seed, backend), ``compile`` (loss, optimizer
class and hyperparameters, metric names, or null), ``training`` (the
optimizer's step counter and the state of fit()'s shuffling generator),
``arrays`` (name, dtype, shape, offset, nbytes and CRC-32 of each array:
``params``, the flat parameter buffer, ``state``, the batch norms' running
statistics (when there are any), and ``opt_state.0``, ``opt_state.1``,
... the optimizer's flat state buffers) and the user's ``metadata``.

Together these make a loaded model continue a fit() exactly as the saved one
would have: the same weights, Adam moments and step count, the same shuffles
(and, as dropout masks are keyed by seed and step, the same masks).

Loading validates everything before it allocates: sizes against the header
and the header against the file's size, so a truncated, corrupted or hostile
file raises ValueError naming the problem, never crashes, hangs or allocates
more than the file holds.  The format is versioned: a newer file is refused
with a clear message rather than misread.
"""
import json
import math
import os
import stat
import struct
import warnings
import zlib

import numpy as np

from . import losses as _losses
from . import metrics as _metrics
from . import regularizers as _regularizers
from ._backend import BACKENDS
from .layers import layer_from_config
from .optimizers import OPTIMIZERS

__all__ = ["save_model", "load_model", "FORMAT_VERSION"]

MAGIC = b"\x93FMLP\r\n\x1a"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIIQ")     # magic, version, header crc32, header length
_ALIGN = 64
MAX_HEADER_BYTES = 16 << 20           # far above any real header (a few KiB per 100 layers)
_MAX_ARRAYS = 64
_MAX_LAYERS = 100_000
_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}


# ---- saving ---------------------------------------------------------------------------

def save_model(model, path, metadata=None):
    """Write `model` to `path` (see the module docstring for the format).

    The file is written under a temporary name and renamed into place, so an
    interrupted save never leaves a half-written file at `path`.

    Parameters
    ----------
    model : Sequential
    path : str or os.PathLike
    metadata : dict or None
        Any JSON-able data to keep with the model (``load_model(path).metadata``).
    """
    path = os.fspath(path)
    seed = model.seed
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"only models with an integer (or None) seed can be saved, "
                         f"got seed={seed!r}")
    config = model.get_config()
    config["seed"] = None if seed is None else int(seed)
    header = {"format": "fastmlp", "fastmlp_version": _version(), "model": config,
              "compile": None, "training": None, "arrays": [],
              "metadata": {} if metadata is None else metadata}
    arrays = []
    if model.input_dim is not None:
        arrays.append(("params", model.params))
        if model.state.size:
            arrays.append(("state", model.state))
    if model.loss is not None:
        header["compile"] = {
            "loss": model.loss.name,
            "loss_param": model.loss.param,
            "class_weight": (None if model.class_weight is None
                             else [[int(c), float(w)] for c, w in model.class_weight.items()]),
            "optimizer": {"class": type(model.optimizer).__name__,
                          "config": model.optimizer.get_config()},
            "metrics": [m.name for m in model.metrics],
            "regularizer": None if model.regularizer is None else model.regularizer.get_config(),
        }
    if model._plan is not None:
        arrays += [(f"opt_state.{i}", s) for i, s in enumerate(model._opt_state)]
    header["training"] = {"step": int(model._plan.step) if model._plan is not None else 0,
                          "epochs_done": int(model._epochs_done),
                          "schedule_state": (None if model.optimizer is None
                                             or model.optimizer.schedule is None
                                             else model.optimizer.schedule._state()),
                          "shuffle_rng": model._shuffle_rng.bit_generator.state}

    offset = 0
    blobs = []
    for name, a in arrays:
        data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        header["arrays"].append({"name": name, "dtype": a.dtype.name, "shape": list(a.shape),
                                 "offset": offset, "nbytes": len(data),
                                 "crc32": zlib.crc32(data)})
        pad = -len(data) % _ALIGN
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad
    try:
        text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ValueError(f"the model or its metadata cannot be saved as JSON: {e}") from None
    text += b" " * (-(len(text) + _PREFIX.size) % _ALIGN)
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, zlib.crc32(text), len(text))

    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(prefix)
            f.write(text)
            for blob in blobs:
                f.write(blob)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _version():
    from . import __version__
    return __version__


# ---- loading --------------------------------------------------------------------------

class _Reader:
    """Reads and checks one file; every problem is a ValueError naming the file."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def fail(self, message):
        raise ValueError(f"{self.path}: {message}")


def load_model(path, backend=None):
    """Load a model written by :meth:`Sequential.save` / :func:`save_model`.

    Parameters
    ----------
    path : str or os.PathLike
    backend : "native", "numpy" or None (None: the saved model's backend)

    Returns
    -------
    Sequential, compiled if the saved one was, with ``metadata`` (a dict).

    Raises
    ------
    ValueError
        If the file is not a fastmlp model file, is truncated or corrupted,
        was written by a newer format version, or describes an invalid model.
    """
    r = _Reader(path)
    try:
        f = open(r.path, "rb")
    except IsADirectoryError:
        r.fail("is a directory, not a model file")
    with f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            r.fail("is not a regular file")
        size = info.st_size
        header, data_start = _read_header(r, f, size)
        arrays = _check_arrays(r, header.get("arrays"), size - data_start)
        try:
            return _build(r, f, header, arrays, data_start, backend)
        except (TypeError, KeyError, AttributeError, OverflowError) as e:
            r.fail(f"not a valid fastmlp model file ({type(e).__name__}: {e})")


def _read_header(r, f, size):
    if size < _PREFIX.size:
        r.fail(f"truncated or not a fastmlp model file: {size} bytes, fewer than the "
               f"{_PREFIX.size}-byte prefix")
    magic, version, crc, length = _PREFIX.unpack(f.read(_PREFIX.size))
    if magic != MAGIC:
        r.fail("not a fastmlp model file (its first bytes are not the fastmlp magic)")
    if version > FORMAT_VERSION:
        r.fail(f"written in format version {version} by a newer fastmlp; this version "
               f"reads format versions up to {FORMAT_VERSION}: upgrade fastmlp")
    if version < 1:
        r.fail(f"corrupted: format version {version}")
    if length > MAX_HEADER_BYTES or length > size - _PREFIX.size:
        r.fail(f"truncated or corrupted: the header claims {length} bytes, the file has "
               f"{size - _PREFIX.size} after the prefix")
    text = f.read(length)
    if len(text) != length:
        r.fail("truncated while reading the header")
    if zlib.crc32(text) != crc:
        r.fail("corrupted: the header does not match its checksum")
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        r.fail(f"corrupted: the header is not valid JSON ({type(e).__name__})")
    if not isinstance(header, dict) or header.get("format") != "fastmlp":
        r.fail("corrupted: the header does not describe a fastmlp model")
    return header, _PREFIX.size + length


def _is_int(v, low=0, high=None):
    return (isinstance(v, int) and not isinstance(v, bool) and v >= low
            and (high is None or v <= high))


def _check_arrays(r, entries, data_size):
    """{name: (dtype, shape, offset, nbytes, crc)} after checking every entry
    against the data region's size (nothing is allocated here)."""
    if not isinstance(entries, list) or len(entries) > _MAX_ARRAYS:
        r.fail("corrupted: bad array table")
    arrays = {}
    end = 0
    for e in entries:
        if not isinstance(e, dict):
            r.fail("corrupted: bad array table entry")
        name, dtype, shape = e.get("name"), e.get("dtype"), e.get("shape")
        offset, nbytes, crc = e.get("offset"), e.get("nbytes"), e.get("crc32")
        if not isinstance(name, str) or name in arrays:
            r.fail("corrupted: bad or repeated array name")
        if not isinstance(dtype, str) or dtype not in _DTYPES:   # (a list is unhashable)
            r.fail(f"array {name[:40]!r} has unsupported dtype {str(dtype)[:40]!r}")
        if not isinstance(shape, list) or len(shape) > 4 or not all(_is_int(d) for d in shape):
            r.fail(f"array {name[:40]!r} has a bad shape")
        if not (_is_int(offset) and _is_int(nbytes) and _is_int(crc, 0, 0xFFFFFFFF)):
            r.fail(f"array {name[:40]!r} has a bad offset, size or checksum")
        if math.prod(shape) * _DTYPES[dtype].itemsize != nbytes:
            r.fail(f"corrupted: array {name[:40]!r} of shape {shape} and dtype {dtype} "
                   f"cannot hold {nbytes} bytes")
        if offset + nbytes > data_size:
            r.fail(f"truncated: array {name[:40]!r} ends at byte {offset + nbytes} of the data, "
                   f"which has {data_size}")
        end = max(end, offset + nbytes)
        arrays[name] = (_DTYPES[dtype], tuple(shape), offset, nbytes, crc)
    if data_size - end >= _ALIGN:
        r.fail(f"corrupted: {data_size - end} unexpected bytes after the arrays")
    return arrays


def _read_array(r, f, arrays, name, data_start):
    dtype, shape, offset, nbytes, crc = arrays[name]
    f.seek(data_start + offset)
    data = f.read(nbytes)
    if len(data) != nbytes:
        r.fail(f"truncated while reading array {name!r}")
    if zlib.crc32(data) != crc:
        r.fail(f"corrupted: array {name!r} does not match its checksum")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _build(r, f, header, arrays, data_start, backend):
    from .model import Sequential

    config = header.get("model")
    if not isinstance(config, dict):
        r.fail("corrupted: no model description")
    layers = config.get("layers")
    if not isinstance(layers, list) or not 0 < len(layers) <= _MAX_LAYERS:
        r.fail("corrupted: bad layer list")
    dtype, seed, input_dim = config.get("dtype"), config.get("seed"), config.get("input_dim")
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        r.fail(f"bad dtype {str(dtype)[:40]!r}")
    if seed is not None and not _is_int(seed, 0, 2 ** 128):
        r.fail(f"bad seed {str(seed)[:40]}")
    if input_dim is not None and not _is_int(input_dim, 1):
        r.fail(f"bad input_dim {str(input_dim)[:40]}")
    backend = config.get("backend") if backend is None else backend
    if backend not in BACKENDS:
        r.fail(f"bad backend {str(backend)[:40]!r}; choose from {BACKENDS}")
    try:
        model = Sequential([layer_from_config(spec) for spec in layers], input_dim=None,
                           dtype=dtype, seed=seed, backend=backend)
    except ValueError as e:
        r.fail(f"invalid model: {e}")

    # weights: the file's array must be exactly the buffer the architecture needs
    if "params" in arrays:
        if input_dim is None:
            r.fail("corrupted: weights without an input_dim")
        _, size, state_size = model._compute_layout(input_dim)
        dt, shape = arrays["params"][:2]
        if dt != _DTYPES[dtype] or shape != (size,):
            r.fail(f"corrupted: the architecture needs {size} {dtype} parameters, the file "
                   f"holds an array of shape {shape} and dtype {dt.name}")
        params = _read_array(r, f, arrays, "params", data_start)
        if not np.isfinite(params).all():
            r.fail("corrupted: the weights contain NaN or infinity")
        state = None
        if state_size:  # the batch norms' running statistics
            if "state" not in arrays:
                r.fail("corrupted: the model has batch norms but the file holds no running "
                       "statistics")
            dt, shape = arrays["state"][:2]
            if dt != _DTYPES[dtype] or shape != (state_size,):
                r.fail(f"corrupted: the architecture needs {state_size} {dtype} running "
                       f"statistics, the file holds an array of shape {shape} and dtype "
                       f"{dt.name}")
            state = _read_array(r, f, arrays, "state", data_start)
        elif "state" in arrays:
            r.fail("corrupted: running statistics for a model without batch norms")
        model.build(input_dim)
        model.params[...] = params
        if state is not None:
            model.state[...] = state
            try:  # finite, running variances >= 0
                model.set_state(model.get_state())
            except ValueError as e:
                r.fail(f"corrupted: {e}")
    elif input_dim is not None:
        r.fail("corrupted: the model is built but the file holds no weights")

    compiled = header.get("compile")
    if compiled is not None:
        _compile(r, model, compiled)
        if model._plan is not None:
            _restore_optimizer_state(r, f, model, arrays, data_start)
    training = header.get("training")
    if training is not None:
        _restore_training(r, model, training)
    metadata = header.get("metadata", {})
    model.metadata = metadata if isinstance(metadata, dict) else {}
    return model


def _compile(r, model, compiled):
    if not isinstance(compiled, dict):
        r.fail("corrupted: bad compile section")
    opt = compiled.get("optimizer")
    if not isinstance(opt, dict) or not isinstance(opt.get("config"), dict):
        r.fail("corrupted: bad optimizer description")
    cls = OPTIMIZERS.get(opt.get("class"))
    if cls is None:
        r.fail(f"unknown optimizer class {str(opt.get('class'))[:40]!r}; known: "
               f"{', '.join(sorted(OPTIMIZERS))}")
    metrics = []
    for name in compiled.get("metrics") or []:
        try:
            metrics.append(_metrics.get(name if isinstance(name, str) else repr(name)))
        except ValueError:
            warnings.warn(f"{r.path}: metric {str(name)[:40]!r} is not a built-in metric and "
                          "was not restored; pass it to compile() again", stacklevel=4)
    loss = compiled.get("loss")
    if not isinstance(loss, str):
        r.fail("corrupted: bad loss name")
    param = compiled.get("loss_param", 0.0)
    if isinstance(param, bool) or not isinstance(param, (int, float)):
        r.fail("corrupted: bad loss parameter")
    class_weight = compiled.get("class_weight")
    if class_weight is not None:
        if not isinstance(class_weight, list) or not all(
                isinstance(p, list) and len(p) == 2 and _is_int(p[0], 0, 2 ** 31)
                and isinstance(p[1], (int, float)) and not isinstance(p[1], bool)
                for p in class_weight):
            r.fail("corrupted: bad class weights")
        class_weight = {c: w for c, w in class_weight}
    regularizer = compiled.get("regularizer")
    if regularizer is not None and not isinstance(regularizer, dict):
        r.fail("corrupted: bad regularizer description")
    try:
        optimizer = cls.from_config(opt["config"])
        model.compile(loss=_losses.Loss(loss, float(param)), optimizer=optimizer,
                      metrics=metrics, class_weight=class_weight,
                      regularizer=None if regularizer is None
                      else _regularizers.Regularizer(**regularizer))
    except (TypeError, ValueError) as e:
        r.fail(f"invalid compile settings: {e}")


def _restore_optimizer_state(r, f, model, arrays, data_start):
    names = sorted(n for n in arrays if n.startswith("opt_state."))
    expected = [f"opt_state.{i}" for i in range(len(model._opt_state))]
    if names != expected:
        r.fail(f"corrupted: {type(model.optimizer).__name__} keeps {len(expected)} state "
               f"buffers, the file holds {len(names)}")
    for name, target in zip(expected, model._opt_state):
        dt, shape = arrays[name][:2]
        if dt != model.dtype.newbyteorder("<") or shape != target.shape:
            r.fail(f"corrupted: optimizer state {name!r} has shape {shape}, expected "
                   f"{target.shape}")
        state = _read_array(r, f, arrays, name, data_start)
        if not np.isfinite(state).all():
            r.fail(f"corrupted: optimizer state {name!r} contains NaN or infinity")
        target[...] = state      # in place: the plan points at these buffers


def _restore_training(r, model, training):
    if not isinstance(training, dict):
        r.fail("corrupted: bad training section")
    step = training.get("step", 0)
    if not _is_int(step, 0, 2 ** 62):
        r.fail(f"corrupted: bad step counter {str(step)[:40]}")
    if model._plan is not None:
        model._plan.step = step
    epochs_done = training.get("epochs_done", 0)
    if not _is_int(epochs_done, 0, 2 ** 62):
        r.fail(f"corrupted: bad epoch counter {str(epochs_done)[:40]}")
    model._epochs_done = epochs_done
    schedule_state = training.get("schedule_state")
    if schedule_state is not None:
        schedule = None if model.optimizer is None else model.optimizer.schedule
        if schedule is None:
            r.fail("corrupted: a schedule state without a schedule")
        try:
            schedule._set_state(schedule_state)
        except ValueError as e:
            r.fail(f"corrupted: {e}")
    state = training.get("shuffle_rng")
    if state is not None:
        generator = model._shuffle_rng
        if not isinstance(state, dict) or \
                state.get("bit_generator") != type(generator.bit_generator).__name__:
            r.fail("corrupted: bad shuffling state")
        try:
            generator.bit_generator.state = state
        except Exception as e:  # the generator's own checks: any failure is a bad file
            r.fail(f"corrupted: bad shuffling state ({type(e).__name__})")
