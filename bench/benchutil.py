"""Small helpers the benchmarks share (bench/*.py put this folder on sys.path first)."""


def percentile(values, p):
    """The p-th percentile of values, nearest rank."""
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]
