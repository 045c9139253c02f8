"""Interleaved timing of several contenders on a shared, noisy machine.

Each repeat times every contender once, in an order rotated from repeat to
repeat, so a neighbour's load hits all of them alike.  A contender's
measurement is a run of calls lasting about `target` seconds (at least
`min_calls`), after `settle` seconds (at least one call) of untimed calls of
the same contender: NumPy's OpenBLAS workers busy-wait ~0.1 s after each call,
and torch's and fastmlp's OpenMP threads spin briefly after a parallel region,
so without it each measurement would pay for the contender before it.
"""
import statistics
import time

__all__ = ["calls_for", "interleave", "median_range", "untimed_calls"]


def calls_for(fn, target, min_calls):
    """Calls of fn that take about `target` seconds (fn is called a few times)."""
    fn()
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= target / 10:
            break
        n *= 2
    return max(min_calls, round(target * n / elapsed))


def untimed_calls(fn, seconds):
    """Call fn for about `seconds` (at least once), untimed: lets the threads
    another contender left spinning go idle first."""
    end = time.perf_counter() + seconds
    fn()
    while time.perf_counter() < end:
        fn()


def _run(fn, n, per_call):
    """Seconds per call of n calls: their mean, or with per_call their median
    (each call timed alone: the typical latency, robust to a preempted call)."""
    if not per_call:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n
    times = [0.0] * n
    clock = time.perf_counter
    for i in range(n):
        start = clock()
        fn()
        times[i] = clock() - start
    return statistics.median(times)


def interleave(contenders, repeats, target, settle, min_calls=1, per_call=False):
    """Seconds per call of each contender, one value per repeat.

    Parameters
    ----------
    contenders : dict name -> (scope, fn)
        `scope()` is a context manager in force while fn runs (thread settings);
        fn takes no arguments.
    repeats : int >= 1
    target, settle : float
        Seconds per measurement, and untimed seconds before it.
    min_calls : int
        Fewest calls per measurement.
    per_call : bool
        Time each call alone and keep the median (latency) instead of the mean.

    Returns
    -------
    dict name -> list of `repeats` floats (seconds per call)
    """
    names = list(contenders)
    calls = {}
    for name in names:
        scope, fn = contenders[name]
        with scope():
            calls[name] = calls_for(fn, target, min_calls)
    seconds = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            scope, fn = contenders[name]
            with scope():
                if settle > 0:
                    untimed_calls(fn, settle)
                seconds[name].append(_run(fn, calls[name], per_call))
    return seconds


def median_range(values):
    """(median, min, max) of a list of numbers."""
    return statistics.median(values), min(values), max(values)
