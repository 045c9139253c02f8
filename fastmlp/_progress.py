"""Progress display for fit(): a live bar (tqdm when installed, else a plain
text bar) and the one-line epoch summary.  Used by callbacks.ProgressLogger."""

__all__ = ["epoch_line", "format_logs", "open_bar", "PlainBar", "TqdmBar"]


def format_logs(logs):
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
                      for k, v in logs.items())


def epoch_line(epoch, epochs, seconds, samples, logs):
    """'epoch 3/20 - 0.12s - 41,234 samples/s - loss: 0.1234 - ...' (epoch 0-based)."""
    rate = samples / seconds if seconds > 0 else float("inf")
    head = f"epoch {epoch + 1}/{epochs} - {seconds:.2f}s - {rate:,.0f} samples/s"
    shown = format_logs(logs)
    return f"{head} - {shown}" if shown else head


class PlainBar:
    """A text progress bar redrawn in place with carriage returns."""

    def __init__(self, total, desc, stream, width=24):
        self.total, self.desc, self.stream, self.width = max(total, 1), desc, stream, width
        self._last_len = 0

    def _write(self, text, end=""):
        pad = max(self._last_len - len(text), 0)
        self.stream.write("\r" + text + " " * pad + end)
        self.stream.flush()
        self._last_len = 0 if end else len(text)

    def update(self, done, seconds, postfix):
        filled = int(self.width * min(done, self.total) / self.total)
        arrow = ">" if filled < self.width else ""
        bar = "=" * filled + arrow + "." * (self.width - filled - len(arrow))
        rate = f"{done / seconds:,.0f} samples/s" if seconds > 0 else "- samples/s"
        text = f"{self.desc} [{bar}] {done}/{self.total} - {rate}"
        self._write(f"{text} - {postfix}" if postfix else text)

    def close(self, final_line=None, postfix=None):
        """End the bar: replace it with `final_line` (the epoch summary), or just
        end the line when None (an interrupted epoch)."""
        if final_line is not None:
            self._write(final_line, end="\n")
        elif self._last_len:
            self.stream.write("\n")
            self.stream.flush()
            self._last_len = 0


class TqdmBar:
    """The same interface on top of tqdm."""

    def __init__(self, total, desc, stream):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="sample", unit_scale=True, file=stream,
                        leave=True, dynamic_ncols=True, mininterval=0.1)

    def update(self, done, seconds, postfix):
        self.bar.n = done
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.refresh()

    def close(self, final_line=None, postfix=None):
        if final_line is not None:
            self.bar.n = self.bar.total
            self.bar.set_postfix_str(postfix or "", refresh=False)
        self.bar.close()


def tqdm_available():
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def open_bar(total, desc, stream, use_tqdm=None):
    """A live bar over `total` samples: tqdm when installed (or when use_tqdm),
    the plain one otherwise (or when use_tqdm is False)."""
    if use_tqdm is None:
        use_tqdm = tqdm_available()
    return TqdmBar(total, desc, stream) if use_tqdm else PlainBar(total, desc, stream)
