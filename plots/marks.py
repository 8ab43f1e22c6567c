"""How a model and a point are marked, the same in every chart, table and report.

* Each model has one colour and one marker (and a line style), from a colour-blind-safe
  palette: Okabe-Ito's eight colours plus four of Paul Tol's, each paired with its own marker
  so that all twelve models stay apart in grayscale print too. The bundled production servers
  have seven more of Tol's colours, line markers and a dotted line.
* A point whose figure cannot be taken at face value is flagged: load-generator errors, fewer
  connections than asked, an open-loop run that missed its rate (its latency is invalid), or a
  load generator that was the bottleneck. Charts draw such a point hollow (errors, invalid) or
  hatched (loadgen-bound) and label it; rankings never count an error or invalid point as a win.
* Spread: each figure with repeats is a median with an interval (serverbench.stats.spread).
"""
import zlib

from serverbench import stats
from serverbench.scenarios import MODEL_ORDER, REFERENCE_ORDER

OKABE_ITO = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7"]
TOL = ["#882255", "#44AA99", "#999933", "#AA4499"]   # Tol's muted wine, teal, olive, purple
# Order chosen so that neighbours in MODEL_ORDER (one family) never share a hue family.
MODEL_COLOURS = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#882255", "#D55E00", "#CC79A7", "#0072B2",
                 "#44AA99", "#999933", "#AA4499", "#F0E442"]
MARKERS = ["o", "s", "^", "v", "D", "P", "X", "*", "h", "<", ">", "p"]
LINESTYLES = ["-", "--", "-.", ":"]
assert sorted(MODEL_COLOURS) == sorted(OKABE_ITO + TOL)
assert len(MODEL_COLOURS) == len(MARKERS) == len(MODEL_ORDER)
# The production servers of the bundled server files: Tol's other colours, line markers (a cross,
# a tick, a thin diamond) that no model uses, and a dotted line, so that a reference row or curve
# reads as one at a glance, in colour and in grayscale.
REFERENCE_COLOURS = ["#332288", "#117733", "#88CCEE", "#DDCC77", "#CC6677", "#661100", "#6699CC"]
REFERENCE_MARKERS = ["1", "2", "3", "4", "+", "x", "d"]
assert len(REFERENCE_COLOURS) == len(REFERENCE_MARKERS) == len(REFERENCE_ORDER)
assert not set(REFERENCE_COLOURS) & set(MODEL_COLOURS) and not set(REFERENCE_MARKERS) & set(MARKERS)

BAD = "bad"          # errors, missing connections, invalid latency: hollow, never a win
BOUND = "bound"      # the load generator was the limit: hatched, a floor of the server's capacity
# How a point that did not run is written in charts and tables.
STATUS_MARK = {"not-applicable": "n/a", "failed": "failed", "unsupported": "unsupported"}


def model_style(model):
    """{"color", "marker", "linestyle"}: fixed for the suite's models and the bundled production
    servers, stable from the name otherwise."""
    if model in REFERENCE_ORDER:
        i = REFERENCE_ORDER.index(model)
        return {"color": REFERENCE_COLOURS[i], "marker": REFERENCE_MARKERS[i], "linestyle": ":"}
    if model in MODEL_ORDER:
        i = MODEL_ORDER.index(model)
    else:
        i = zlib.crc32(model.encode()) % len(MODEL_COLOURS)
    return {"color": MODEL_COLOURS[i], "marker": MARKERS[i], "linestyle": LINESTYLES[i % len(LINESTYLES)]}


def marker_edge(style, width=0.5):
    """The edge of a model's marker: a thin dark outline around a filled marker, and the model's
    own colour, thicker, for a line marker (a reference's), which is nothing but its edge."""
    from matplotlib.markers import MarkerStyle
    if MarkerStyle(style["marker"]).is_filled():
        return {"markeredgecolor": "#222222", "markeredgewidth": width}
    return {"markeredgecolor": style["color"], "markeredgewidth": 1.6}


def model_color(model):
    return model_style(model)["color"]


def point_flags(p):
    """[(kind, short label)] of what makes a point's figures not face value; [] for a clean point."""
    if p is None or p.status != "ok":
        return []
    flags = []
    if p.errors:
        flags.append((BAD, f"{p.errors:,} errors"))
    if p.established is not None and p.connections and p.established < p.connections:
        flags.append((BAD, f"{p.established} of {p.connections} connected"))
    if p.open_loop_valid is False:
        flags.append((BAD, "rate missed: latency invalid"))
    if p.bound == "loadgen":
        flags.append((BOUND, "loadgen-bound"))
    return flags


def severity(p):
    """BAD, BOUND or None: the worst flag of a point."""
    kinds = {kind for kind, _ in point_flags(p)}
    return BAD if BAD in kinds else BOUND if BOUND in kinds else None


def flag_text(p):
    return ", ".join(label for _, label in point_flags(p))


def spread_of(values):
    """stats.Spread of the repeats, or None with fewer than two."""
    values = [v for v in values or [] if v is not None]
    if len(values) < 2:
        return None
    return stats.spread(values)


def interval(values):
    """(low, high) of the repeats' spread, or None."""
    s = spread_of(values)
    return (s.ci_low, s.ci_high) if s else None


def spread_note():
    return ("Brackets give each median's spread over the repeats: a 95% interval of the median from six repeats "
            "on; with fewer, the range of the repeats (it covers the median with 50% confidence at 2 repeats, "
            "75% at 3, 88% at 4, 94% at 5). A single repeat shows no bracket.")
