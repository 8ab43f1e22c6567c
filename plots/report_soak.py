"""The report's soak section: what load every model was soaked under, the verdict per model
(soak_table.py's table, sortable), the thresholds and what decided each verdict that is not flat,
then the four soak charts."""
from . import soak_plots, soak_table
from .report_html import E, NOT_MEASURED, inline_svg, model_td, table

CAPTIONS = {"soak_memory": "Soak: the server's memory (PSS) over time, one panel per model",
            "soak_descriptors": "Soak: the server's open descriptors over time, one panel per model",
            "soak_p99": "Soak: the keep-alive clients' p99 per interval, one panel per model",
            "soak_loadgen_memory": "Soak: the load generator's own memory over time, one panel per model"}


def verdict_td(text):
    cls = {"flat": "verdict-holds", "grows": "verdict-does-not-hold", "cannot tell": "verdict-inconclusive"}
    return f'<td class="{cls.get(text, "verdict-not-measured")}">{E(text)}</td>'


def cell(key, text, value):
    if key == "model":
        return model_td(text)
    if key == "verdict":
        return verdict_td(text)
    cls = ' class="num"' if key not in ("grew", "notes") else ""
    return f'<td{cls} data-v="{"" if value is None else value}">{E(text)}</td>'


def soak_section(run, out_dir):
    doc, records = soak_table.soak_doc(run.path), soak_table.load_soak(run.path)
    if not records:
        return f"<p>Soak: {NOT_MEASURED} (no soak.json; <code>run_all.sh --profile soak</code> runs one).</p>"
    rows = [[cell(key, *row[key]) for key, _ in soak_table.COLUMNS] for row in soak_table.soak_rows(records)]
    parts = [f'<p class="note">{E(soak_table.plan_text(doc))}</p>',
             table([heading for _, heading in soak_table.COLUMNS], rows)]
    parts += [f'<p class="note">{E(line)}</p>' for line in soak_table.thresholds_text(records)]
    why = soak_table.why_lines(records)
    if why:
        parts.append("<h3>What decided</h3><ul>" + "".join(f"<li>{E(line)}</li>" for line in why) + "</ul>")
    if soak_table.soaked(records):
        parts.append('<p class="note">One panel per model, on the same axes; x: minutes from the soak\'s start; '
                     'shaded: the settle (light grey), the drain (grey, from the dashed line) and the reload (pale '
                     'lavender). A red frame: the resource that grew.</p>')
        parts += [inline_svg(out_dir, name, CAPTIONS[name]) or "" for name in soak_plots.CHARTS]
    return "\n".join(parts)
