"""Pictures of training and of what a network learned (needs matplotlib:
``pip install fastmlp[plot]``).

plot_history
    Loss and metric curves per epoch, training against validation: the
    over-fitting picture (validation loss turning up while training loss falls).
plot_decision_boundary
    A 2-D classifier's regions, shaded by P(class | x): each point of a grid is
    coloured by the probability-weighted mix of the class colours, so confident
    regions are saturated and uncertain ones fade towards white.
plot_representations
    How each layer transforms the inputs: the data in input space, then in each
    layer's output space (directly for 2 or 3 units, else projected on its first
    two principal components), coloured by class.

Each function draws into new axes (or the ``ax``/``fig`` given) and returns the
matplotlib Figure; save it with ``fig.savefig("name.png")``.
"""
import numpy as np

__all__ = ["plot_history", "plot_decision_boundary", "plot_representations", "pca"]

_PASTEL = 0.55  # how far a certain region's colour goes from white towards its class colour


def _pyplot():
    try:
        import matplotlib
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("fastmlp.plot needs matplotlib: pip install fastmlp[plot] "
                          "(or pip install matplotlib)") from None
    return matplotlib, plt


def _class_colors(n):
    _, plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return np.array([cmap(i % cmap.N)[:3] for i in range(n)])


def plot_history(history, keys=None, ax=None):
    """Loss and metric curves from a History.

    Parameters
    ----------
    history : History (from fit()) or its ``.history`` dict
    keys : list of str or None
        Quantities to plot, without the "val_" prefix ("loss", "accuracy", ...);
        None plots every one the history has.  Each gets its own panel, with the
        training curve solid and the validation curve dashed.
    ax : matplotlib Axes or None (only with a single key)

    Returns
    -------
    matplotlib.figure.Figure
    """
    _, plt = _pyplot()
    logs = history.history if hasattr(history, "history") else dict(history)
    epochs = (list(history.epoch) if hasattr(history, "epoch")
              else list(range(len(next(iter(logs.values()), [])))))
    if not logs:
        raise ValueError("the history is empty: nothing to plot")
    if keys is None:
        keys = [k for k in logs if not k.startswith("val_") and k != "lr"]
        keys += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in keys]
    elif isinstance(keys, str):
        keys = [keys]
    for key in keys:
        if key not in logs and "val_" + key not in logs:
            raise ValueError(f"the history has no {key!r}; it has {', '.join(logs)}")
    if ax is not None and len(keys) != 1:
        raise ValueError("ax can only be given for a single key")
    if ax is None:
        fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax]
    x = [e + 1 for e in epochs]
    for axis, key in zip(axes, keys):
        if key in logs:
            axis.plot(x, logs[key], "-", color="C0", label=f"training {key}")
        if "val_" + key in logs:
            axis.plot(x, logs["val_" + key], "--", color="C1", label=f"validation {key}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.set_title(key)
        axis.grid(True, alpha=0.3)
        axis.legend()
    fig.tight_layout()
    return fig


def plot_decision_boundary(model, X, y=None, resolution=200, margin=0.25, ax=None):
    """Regions of a 2-D classifier, shaded by P(class | x), with the data on top.

    Each grid point gets the colour sum_c P(c | x) colour_c, lightened towards
    white as max_c P(c | x) falls to 1/k (and kept pastel so the data points,
    drawn in the full class colours, stand out); a contour is drawn where the
    most probable class changes.

    Parameters
    ----------
    model : Sequential with 2 inputs and a softmax cross-entropy loss
        (a single-output model with a sigmoid last layer is read as P(class 1 | x))
    X : array-like (n_samples, 2)
    y : labels (n_samples,) or None (points drawn in grey)
    resolution : int >= 10, grid points per axis
    margin : float, fraction of the data's range added around it
    ax : matplotlib Axes or None

    Returns
    -------
    matplotlib.figure.Figure
    """
    _, plt = _pyplot()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary needs 2-D inputs of shape (n, 2), got {X.shape}")
    if model.input_dim != 2:
        raise ValueError(f"the model takes {model.input_dim} inputs; a decision boundary is "
                         "drawn for 2")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) \
            or resolution < 10:
        raise ValueError(f"resolution must be an integer >= 10, got {resolution!r}")
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-9)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    xx, yy = np.meshgrid(gx, gy)
    proba = model.predict(np.column_stack([xx.ravel(), yy.ravel()])).astype(np.float64)
    if proba.shape[1] == 1:  # one sigmoid output: P(class 1 | x)
        p1 = np.clip(proba[:, 0], 0.0, 1.0)
        proba = np.column_stack([1.0 - p1, p1])
    elif not model.loss.classification:
        raise ValueError("plot_decision_boundary needs a classifier (softmax cross-entropy) "
                         "or a single output read as P(class 1 | x)")
    k = proba.shape[1]
    colors = _class_colors(k)
    confidence = proba.max(axis=1, keepdims=True)
    # the mix of class colours, pastel (so the points stay visible) and fading to
    # white where the model is unsure: strength 0 at uniform P, 1 at certainty
    floor = 1.0 / k
    strength = _PASTEL * (confidence - floor) / max(1.0 - floor, 1e-12)
    image = 1.0 - strength * (1.0 - proba @ colors)
    image = np.clip(image, 0.0, 1.0).reshape(resolution, resolution, 3)
    fig, ax = (plt.subplots(figsize=(5, 5)) if ax is None else (ax.figure, ax))
    ax.imshow(image, origin="lower", extent=(gx[0], gx[-1], gy[0], gy[-1]), aspect="auto",
              interpolation="bilinear")
    winner = proba.argmax(axis=1).reshape(resolution, resolution)
    if k > 1 and winner.min() != winner.max():
        ax.contour(xx, yy, winner, levels=np.arange(k) + 0.5, colors="k", linewidths=0.8,
                   alpha=0.6)
    if y is None:
        ax.scatter(X[:, 0], X[:, 1], s=12, c="0.3", edgecolors="white", linewidths=0.4)
    else:
        labels = np.asarray(y)
        labels = labels.argmax(axis=1) if labels.ndim == 2 else labels.astype(np.int64)
        if labels.shape[0] != X.shape[0]:
            raise ValueError(f"y has {labels.shape[0]} labels, X has {X.shape[0]} samples")
        point_colors = _class_colors(max(k, int(labels.max()) + 1))[labels]
        ax.scatter(X[:, 0], X[:, 1], s=14, c=point_colors, edgecolors="k", linewidths=0.4)
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_title("decision regions, shaded by P(class | x)")
    return fig


def pca(A, n_components=2):
    """Project the rows of A on their first `n_components` principal components.

    A : (n_samples, n_features) -> (n_samples, n_components), centred; the
    components come from the SVD of the centred data (signs fixed so each
    component's largest loading is positive, for a stable picture)."""
    A = np.asarray(A, dtype=np.float64)
    centred = A - A.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:n_components]
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    projected = centred @ (vt * signs[:, None]).T
    if projected.shape[1] < n_components:  # fewer samples or features than components
        projected = np.pad(projected, ((0, 0), (0, n_components - projected.shape[1])))
    return projected


def plot_representations(model, X, y=None, layers=None, include_input=True, max_points=2000,
                         fig=None):
    """How each layer re-represents the data: one panel per layer output.

    Outputs with 2 units are drawn as they are, 3 units in a 3-D panel, more
    units projected on their first two principal components (:func:`pca`; the
    panel title says so), a single unit against the sample index.

    Parameters
    ----------
    model : Sequential, built
    X : array-like (n_samples, n_features)
    y : labels (n_samples,) or None, colouring the points
    layers : list of int or None
        Layer indices to show (default: every layer).
    include_input : bool
        Add a first panel with the inputs themselves.
    max_points : int
        Draw at most this many samples (an evenly spaced subset).
    fig : matplotlib Figure or None

    Returns
    -------
    matplotlib.figure.Figure
    """
    _, plt = _pyplot()
    X = np.asarray(X)
    outputs = model.activations(X)
    if layers is None:
        layers = list(range(len(outputs)))
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) \
                or not -len(outputs) <= i < len(outputs):
            raise ValueError(f"layer index {i!r} is not in 0..{len(outputs) - 1}")
    panels = ([("input", np.asarray(X, dtype=np.float64))] if include_input else [])
    # one output per layer with parameters (Dropout adds none)
    panels += [(f"layer {i % len(outputs)}: {model._units[i]!r}", outputs[i]) for i in layers]
    keep = np.linspace(0, X.shape[0] - 1, min(X.shape[0], max_points)).astype(np.int64)
    if y is not None:
        labels = np.asarray(y)
        labels = labels.argmax(axis=1) if labels.ndim == 2 else labels
        if labels.shape[0] != X.shape[0]:
            raise ValueError(f"y has {labels.shape[0]} labels, X has {X.shape[0]} samples")
        classes = np.unique(labels)
        colors = _class_colors(len(classes))[np.searchsorted(classes, labels[keep])]
    else:
        colors = "C0"
    if fig is None:
        fig = plt.figure(figsize=(3.6 * len(panels), 3.6))
    for p, (title, A) in enumerate(panels):
        A = np.asarray(A, dtype=np.float64)[keep]
        units = A.shape[1]
        if units == 3:
            ax = fig.add_subplot(1, len(panels), p + 1, projection="3d")
            ax.scatter(A[:, 0], A[:, 1], A[:, 2], c=colors, s=6)
        else:
            ax = fig.add_subplot(1, len(panels), p + 1)
            if units == 1:
                ax.scatter(np.arange(A.shape[0]), A[:, 0], c=colors, s=6)
                ax.set_xlabel("sample")
            elif units == 2:
                ax.scatter(A[:, 0], A[:, 1], c=colors, s=6)
            else:
                P = pca(A, 2)
                ax.scatter(P[:, 0], P[:, 1], c=colors, s=6)
                title += f"\n{units} units, PCA to 2-D"
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
