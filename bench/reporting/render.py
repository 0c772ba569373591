r"""Renders leaderboard views (:mod:`bench.reporting.views`) as CSV, Markdown, LaTeX and HTML.

Every format shows the same numbers of the same view; only the markup differs:

* CSV: numbers only (fractions, not percent): per column ``<key>_mean``, ``_std``, ``_n``,
  ``_ci_low``, ``_ci_high``, ``_p_holm``, and a ``missing`` column with the reasons;
* Markdown: mean ± std (percent where the metric is a fraction), best value per column in
  bold and the second best underlined (``<ins>``), the 95% bootstrap interval in brackets
  where the view shows it, ▲ / ▼ where a method is significantly better / worse than the
  reference (paired bootstrap, Holm-adjusted p < 0.05); a missing cell names its reason;
* LaTeX: a booktabs ``table`` per view, best in ``\textbf``, second ``\underline``,
  ± std as a ``\scriptsize`` suffix, ▲ / ▼ as ``\blacktriangle`` superscripts (amssymb);
* HTML: one static page, every view a table whose columns sort on click (inline script,
  no network), the interval and p-value in each cell's tooltip.

Best and second are decided on the values as displayed (rounded), so two methods that
print the same number share the mark.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence

import pandas as pd

from bench.reporting.views import Column, Entry, View

MARK_SYMBOLS = {"better": "▲", "worse": "▼"}
LATEX_MARKS = {"better": r"$^{\blacktriangle}$", "worse": r"$^{\blacktriangledown}$"}


def _digits(column: Column) -> int:
    if column.percent:
        return 1
    return {"cls/nll": 3, "rank": 2, "cost/device_hours": 4}.get(column.metric, 0)


def _scaled(value: float, column: Column) -> float:
    return value * 100.0 if column.percent else value


def _number(value: float, column: Column) -> str:
    return f"{_scaled(value, column):.{_digits(column)}f}"


def best_and_second(view: View, column: Column) -> dict[str, str]:
    """``{row: "best" | "second"}`` by the displayed (rounded) value, in the column's direction."""
    if column.higher_is_better is None:
        return {}
    shown = {}
    for row in view.rows:
        entry = view.entry(row, column.key)
        if entry.missing is None and math.isfinite(entry.mean):
            shown[row] = round(_scaled(entry.mean, column), _digits(column))
    distinct = sorted(set(shown.values()), reverse=column.higher_is_better)
    if len(shown) < 2:
        return {}
    marks = {row: "best" for row, v in shown.items() if v == distinct[0]}
    if len(distinct) > 1:
        marks.update({row: "second" for row, v in shown.items() if v == distinct[1]})
    return marks


def _arrow(column: Column) -> str:
    """Header suffix giving the column's direction (the rank column names its own)."""
    if column.higher_is_better is None or column.metric == "rank":
        return ""
    return " ↑" if column.higher_is_better else " ↓"


def _row_label(view: View, row: str) -> str:
    return f"{row} (ref)" if row == view.reference else row


def _n_text(view: View, row: str) -> str:
    entries = [view.entry(row, c.key) for c in view.columns]
    counted = [e for e in entries if e.missing is None and e.n_expected]
    if not counted:
        return "0"
    n, expected = max(e.n for e in counted), max(e.n_expected for e in counted)
    return f"{n}" if n == expected else f"{n}/{expected}"


# --- CSV -------------------------------------------------------------------------------------


def to_csv(view: View) -> str:
    """Numbers only: one row per method, six numeric fields per column, reasons last."""
    records = []
    for row in view.rows:
        record: dict[str, object] = {"method": row}
        reasons = []
        for column in view.columns:
            entry = view.entry(row, column.key)
            record[f"{column.key}_mean"] = entry.mean
            record[f"{column.key}_std"] = entry.std
            record[f"{column.key}_n"] = entry.n
            record[f"{column.key}_ci_low"] = entry.ci_low
            record[f"{column.key}_ci_high"] = entry.ci_high
            record[f"{column.key}_p_holm"] = entry.p_holm
            if entry.missing is not None:
                reasons.append(f"{column.key}: {entry.missing}")
        record["is_reference"] = row == view.reference
        record["missing"] = "; ".join(dict.fromkeys(r.split(": ", 1)[1] for r in reasons))
        records.append(record)
    buffer = io.StringIO()
    pd.DataFrame(records).to_csv(buffer, index=False)
    return buffer.getvalue()


# --- Markdown --------------------------------------------------------------------------------


def _markdown_cell(view: View, entry: Entry, column: Column, mark: str | None) -> str:
    if entry.missing is not None:
        return f"— *{entry.missing}*"
    text = _number(entry.mean, column)
    if mark == "best":
        text = f"**{text}**"
    elif mark == "second":
        text = f"<ins>{text}</ins>"
    if math.isfinite(entry.std):
        text += f" ± {_scaled(entry.std, column):.{_digits(column)}f}"
    if view.show_ci and math.isfinite(entry.ci_low):
        text += f" [{_number(entry.ci_low, column)}, {_number(entry.ci_high, column)}]"
    if entry.mark:
        text += f" {MARK_SYMBOLS[entry.mark]}"
    return text


def to_markdown(view: View, level: int = 3) -> str:
    """A Markdown table with the view's title as a heading and notes below."""
    groups = [c.group for c in view.columns]
    headers = [f"{c.group} {c.header}".strip() if any(groups) else c.header for c in view.columns]
    lines = [f"{'#' * level} {view.title}", ""]
    if view.caption:
        lines += [view.caption, ""]
    lines.append(
        "| method | n | "
        + " | ".join(h + _arrow(c) for h, c in zip(headers, view.columns, strict=True))
        + " |"
    )
    lines.append("|---|---:|" + "---:|" * len(view.columns))
    marks = {c.key: best_and_second(view, c) for c in view.columns}
    for row in view.rows:
        cells = [
            _markdown_cell(view, view.entry(row, c.key), c, marks[c.key].get(row))
            for c in view.columns
        ]
        lines.append(
            f"| {_row_label(view, row)} | {_n_text(view, row)} | " + " | ".join(cells) + " |"
        )
    notes = [f"- {row}: {note}" for row, note in view.row_notes.items()]
    legend = []
    if view.reference and any(e.mark for e in view.entries.values()):
        legend.append(
            f"▲/▼: significantly better/worse than `{view.reference}` (paired bootstrap over "
            "test examples, Holm-adjusted p < 0.05)."
        )
    if view.show_ci:
        legend.append("[a, b]: 95% paired bootstrap interval over test examples.")
    legend.append("**bold**: best, <ins>underlined</ins>: second best.")
    lines += ["", " ".join(legend)]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


# --- LaTeX -----------------------------------------------------------------------------------

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "·": "/",
    "±": r"$\pm$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "—": "--",
    "–": "--",
}


def tex_escape(text: str) -> str:
    """Escapes LaTeX specials and maps the few non-ASCII symbols the views use."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def _latex_cell(entry: Entry, column: Column, mark: str | None) -> str:
    if entry.missing is not None:
        return r"\textit{" + tex_escape(entry.missing.split(" (")[0]) + "}"
    text = _number(entry.mean, column)
    if mark == "best":
        text = r"\textbf{" + text + "}"
    elif mark == "second":
        text = r"\underline{" + text + "}"
    if math.isfinite(entry.std):
        text += r"{\scriptsize$\pm$" + f"{_scaled(entry.std, column):.{_digits(column)}f}" + "}"
    if entry.mark:
        text += LATEX_MARKS[entry.mark]
    return text


def _latex_group_header(columns: Sequence[Column]) -> list[str]:
    if not any(c.group for c in columns):
        return []
    spans, rules, start = [""], [], 2
    i = 0
    while i < len(columns):
        group = columns[i].group
        j = i
        while j < len(columns) and columns[j].group == group:
            j += 1
        width = j - i
        if group:
            spans.append(r"\multicolumn{" + str(width) + "}{c}{" + tex_escape(group) + "}")
            rules.append(r"\cmidrule(lr){" + f"{start + i}-{start + j - 1}" + "}")
        else:
            spans += [""] * width  # ungrouped columns keep the column count right
        i = j
    row = " & ".join(spans) + r" \\"
    return [row, " ".join(rules)]


def to_latex(view: View) -> str:
    """One booktabs ``table`` environment (needs booktabs and amssymb)."""
    marks = {c.key: best_and_second(view, c) for c in view.columns}
    spec = "l" + "r" * len(view.columns)
    label = "tab:" + "".join(ch if ch.isalnum() else "-" for ch in view.slug)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + tex_escape(view.title + (". " + view.caption if view.caption else "")) + "}",
        r"\label{" + label + "}",
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
        r"\begin{tabular}{" + spec + "}",
        r"\toprule",
        *_latex_group_header(view.columns),
        "Method & " + " & ".join(tex_escape(c.header + _arrow(c)) for c in view.columns) + r" \\",
        r"\midrule",
    ]
    for row in view.rows:
        cells = [
            _latex_cell(view.entry(row, c.key), c, marks[c.key].get(row)) for c in view.columns
        ]
        lines.append(tex_escape(_row_label(view, row)) + " & " + " & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


LATEX_PREAMBLE = (
    "% Generated by bench.reporting.render from results/tables/summary.parquet; do not edit.\n"
    "% Needs \\usepackage{booktabs,amssymb,graphicx}; \\input{} this file in a document.\n"
)


def latex_document(body: str) -> str:
    """A standalone document around rendered tables (to test that they compile)."""
    return (
        "\\documentclass{article}\n\\usepackage[margin=1cm,landscape]{geometry}\n"
        "\\usepackage{booktabs,amssymb,graphicx}\n\\begin{document}\n"
        + body
        + "\n\\end{document}\n"
    )


# --- HTML ------------------------------------------------------------------------------------

_SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, _) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.dataset.order !== 'asc';
    th.parentNode.querySelectorAll('th').forEach(function (h) { delete h.dataset.order; });
    th.dataset.order = ascending ? 'asc' : 'desc';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].dataset.value, y = b.cells[index].dataset.value;
      var missingX = x === undefined || x === '', missingY = y === undefined || y === '';
      if (missingX || missingY) { return missingX - missingY; }  // missing cells last
      var fx = parseFloat(x), fy = parseFloat(y);
      var cmp = (isNaN(fx) || isNaN(fy)) ? x.localeCompare(y) : fx - fy;
      return ascending ? cmp : -cmp;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 2em; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; text-align: right; border-bottom: 1px solid #ddd; }
th { cursor: pointer; border-bottom: 2px solid #444; background: #f6f6f6; }
th[data-order='asc']::after { content: ' \\25B2'; }
th[data-order='desc']::after { content: ' \\25BC'; }
td:first-child, th:first-child { text-align: left; }
td.best { font-weight: bold; } td.second { text-decoration: underline; }
td.missing { color: #999; font-style: italic; } .std { font-size: 0.8em; color: #555; }
.mark { font-size: 0.8em; } nav a { margin-right: 1em; }
"""


def _html_cell(view: View, entry: Entry, column: Column, mark: str | None) -> str:
    if entry.missing is not None:
        return f'<td class="missing" data-value="">{html.escape(entry.missing)}</td>'
    value = _scaled(entry.mean, column)
    text = _number(entry.mean, column)
    if math.isfinite(entry.std):
        text += f' <span class="std">± {_scaled(entry.std, column):.{_digits(column)}f}</span>'
    if entry.mark:
        text += f' <span class="mark">{MARK_SYMBOLS[entry.mark]}</span>'
    tips = [f"n = {entry.n}"]
    if math.isfinite(entry.ci_low):
        tips.append(f"95% CI [{_number(entry.ci_low, column)}, {_number(entry.ci_high, column)}]")
    if math.isfinite(entry.p_holm):
        tips.append(f"Holm p vs reference = {entry.p_holm:.3g}")
    css = f' class="{mark}"' if mark else ""
    return f'<td{css} data-value="{value!r}" title="{html.escape("; ".join(tips))}">{text}</td>'


def view_to_html(view: View) -> str:
    """One view as an HTML section with a sortable table."""
    marks = {c.key: best_and_second(view, c) for c in view.columns}
    header = "".join(
        f"<th>{html.escape((c.group + ' ' + c.header).strip())}</th>" for c in view.columns
    )
    rows = []
    for row in view.rows:
        cells = "".join(
            _html_cell(view, view.entry(row, c.key), c, marks[c.key].get(row)) for c in view.columns
        )
        label = html.escape(_row_label(view, row))
        rows.append(f'<tr><td data-value="{html.escape(row)}">{label}</td>{cells}</tr>')
    notes = "".join(
        f"<li>{html.escape(r)}: {html.escape(n)}</li>" for r, n in view.row_notes.items()
    )
    return (
        f'<section id="{html.escape(view.slug)}"><h3>{html.escape(view.title)}</h3>'
        + (f"<p>{html.escape(view.caption)}</p>" if view.caption else "")
        + f'<table class="sortable"><thead><tr><th>method</th>{header}</tr></thead>'
        + f"<tbody>{''.join(rows)}</tbody></table>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + "</section>"
    )


def html_page(title: str, sections: Sequence[tuple[str, Sequence[View]]], intro: str = "") -> str:
    """A self-contained page: a heading per section, its views as sortable tables."""
    nav = "".join(
        f'<a href="#{html.escape(_anchor(name))}">{html.escape(name)}</a>' for name, _ in sections
    )
    body = []
    for name, views in sections:
        body.append(f'<h2 id="{html.escape(_anchor(name))}">{html.escape(name)}</h2>')
        body += [view_to_html(v) for v in views]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p><nav>{nav}</nav>"
        + "".join(body)
        + f"<script>{_SORT_SCRIPT}</script></body></html>\n"
    )


def _anchor(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower())
