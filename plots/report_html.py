"""The pieces report.html is made of: escaped text, numbers with their unit, table cells with a
median, its spread and its flags, sortable tables, each model's legend drawn as a small SVG, a
chart's SVG inlined, a section."""
import html
import os
import re

from serverbench.units import latency_us, number

from . import marks

E = html.escape
NOT_MEASURED = "not measured in this run"


def fmt(v, unit=""):
    """A figure of the report in its unit: a latency (unit µs) in µs, ms or s, anything else a number."""
    return latency_us(v) if unit == "µs" else number(v, unit)


def value_cell(p, value, metric, unit=""):
    """A table cell: the median, its spread in brackets, and the point's flags."""
    if p is None:
        return '<td class="num">—</td>'
    if p.status != "ok":
        return f'<td class="num" title="{E(p.reason or "")}">{E(p.status)}</td>'
    v = value(p)
    span = marks.interval(p.samples.get(metric)) if metric else None
    text = E(fmt(v, unit))
    if span:
        text += f' <span class="spread">[{E(fmt(span[0], unit))}–{E(fmt(span[1], unit))}]</span>'
    kind = marks.severity(p)
    if kind:
        cls = "flag-bad" if kind == marks.BAD else "flag-bound"
        text += f' <span class="{cls}" title="{E(marks.flag_text(p))}">{"⚠" if kind == marks.BAD else "▨"}</span>'
    return f'<td class="num" data-v="{"" if v is None else v}">{text}</td>'


def flags_td(p, notes):
    kind = marks.severity(p)
    cls = {marks.BAD: "notes flag-bad", marks.BOUND: "notes flag-bound"}.get(kind, "notes")
    return f'<td class="{cls}">{E(notes)}</td>'


def table(headers, rows, cls="sortable"):
    """rows: lists of ready-made <td> strings."""
    head = "".join(f"<th>{E(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return (f'<div class="wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{body}\n</tbody></table></div>')


def td(text, v=None):
    return f'<td data-v="{v}">{E(str(text))}</td>' if v is not None else f"<td>{E(str(text))}</td>"


def model_td(model):
    st = marks.model_style(model)
    return (f'<td class="model" data-v="{E(model)}">{legend_svg(model)}'
            f'{E(model)} <span class="note">({E(marker_name(st["marker"]))})</span></td>')


DASHES = {"-": "", "--": "5,2", "-.": "5,2,1.5,2", ":": "1.5,2"}


def legend_svg(model):
    """The model's line style and marker as the charts draw them, a few pixels wide."""
    from matplotlib.markers import MarkerStyle
    st = marks.model_style(model)
    style = MarkerStyle(st["marker"])
    path = style.get_path().transformed(style.get_transform())
    d = []
    letters = {1: "M", 2: "L", 3: "Q", 4: "C"}
    for vertices, code in path.iter_segments():
        if code == 79:
            d.append("Z")
            continue
        points = [(14 + 9 * x, 7 - 9 * y) for x, y in zip(vertices[::2], vertices[1::2])]
        d.append(letters[code] + " ".join(f"{x:.2f},{y:.2f}" for x, y in points))
    dash = DASHES.get(st["linestyle"], "")
    return (f'<svg class="legend" width="28" height="14" viewBox="0 0 28 14" aria-hidden="true">'
            f'<line x1="0" y1="7" x2="28" y2="7" stroke="{st["color"]}" stroke-width="1.6"'
            + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
            + (f'<path d="{" ".join(d)}" fill="{st["color"]}" stroke="#222" stroke-width="0.4"/></svg>'
               if style.is_filled() else
               f'<path d="{" ".join(d)}" fill="none" stroke="{st["color"]}" stroke-width="1.4"/></svg>'))


MARKER_NAMES = {"o": "circle", "s": "square", "^": "triangle up", "v": "triangle down", "D": "diamond",
                "P": "plus", "X": "cross", "*": "star", "h": "hexagon", "<": "triangle left",
                ">": "triangle right", "p": "pentagon", "1": "tri down", "2": "tri up", "3": "tri left",
                "4": "tri right", "+": "thin plus", "x": "thin cross", "d": "thin diamond"}


def marker_name(marker):
    return MARKER_NAMES.get(marker, marker)


_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(folder, name, caption):
    """The chart's SVG, without its XML prolog and metadata, ids prefixed so that several charts
    in one page cannot collide. None when the chart was not drawn."""
    path = os.path.join(folder, f"{name}.svg")
    try:
        with open(path) as f:
            svg = f.read()
    except OSError:
        return None
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", name) + "-"
    for ident in set(_ID.findall(svg)):
        svg = (svg.replace(f'id="{ident}"', f'id="{prefix}{ident}"')
               .replace(f'href="#{ident}"', f'href="#{prefix}{ident}"')
               .replace(f"url(#{ident})", f"url(#{prefix}{ident})"))
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{E(caption)}" ', 1)
    return f"<figure>{svg}<figcaption>{E(caption)}</figcaption></figure>"


def section(ident, title, body):
    return f'<section id="{ident}">\n<h2>{E(title)}</h2>\n{body}\n</section>'
