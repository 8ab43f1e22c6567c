"""A figure written with its unit, the same in the charts and in summary.md."""


def human(v, _pos=None):
    """A count in three significant digits and k, M or G (also a matplotlib tick formatter)."""
    if v is None:
        return "?"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def fmt_latency_us(us):
    """A latency given in µs, written in µs, ms or s."""
    if us is None:
        return "—"
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.0f} µs"
