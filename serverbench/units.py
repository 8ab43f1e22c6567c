"""How the suite writes a figure: one rule per kind of figure, used by the driver's lines,
comparison.md, the capacity texts, the terminal table, summary.md, the charts and the report."""

NONE = "—"


def number(v, unit=""):
    """Three significant digits below 100, whole numbers with thousands separators from 100 up
    (12.3, 456, 78,901), then the unit as given (" req/s", " ms", "%")."""
    if v is None:
        return NONE
    return (f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}") + unit


def rate(rps):
    """Requests per second."""
    return number(rps, " req/s")


def latency_us(us):
    """A latency given in µs, written in µs, ms or s."""
    if us is None:
        return NONE
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1000:
        return f"{us / 1000:,.2f} ms"
    return f"{us:.0f} µs"


def compact(v, _pos=None):
    """A count in three significant digits and k, M or G (the terminal table's cells, the charts'
    labels; also a matplotlib tick formatter)."""
    if v is None:
        return "?"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def per_request(v):
    """A count per request: three decimals below 10, where 1.000 and 1.250 differ."""
    if v is None:
        return NONE
    return f"{v:.3f}" if v < 10 else f"{v:,.1f}"


def p_value(p):
    return NONE if p is None else f"{p:.2g}"


def ratio(r):
    """A ratio of two medians (B/A), to three decimals: 1.050 is a 5% change."""
    return NONE if r is None else f"{r:.3f}"


def percent(x):
    return NONE if x is None else f"{x:.1%}"
