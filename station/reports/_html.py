"""A printable HTML page of a report: tables and inline SVG charts, no external assets."""

from __future__ import annotations

from html import escape

from ._model import Cell, Report, Table, label

__all__ = ["bar_chart", "render_html"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
th,td{border:1px solid #999;padding:2px 6px;text-align:left}
td.n{text-align:right}svg{display:block;margin:.5em 0}
@media print{h2{break-after:avoid}table,svg{break-inside:avoid}}
"""


def _fmt(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    return str(value)


def bar_chart(title: str, bars: list[tuple[str, float]], *, percent: bool = False) -> str:
    """A horizontal bar chart as inline SVG (one bar per label)."""
    if not bars:
        return ""
    top = max(v for _, v in bars) or 1.0
    row, left, width = 18, 160, 360
    height = row * len(bars) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{left + width + 80}" '
        f'height="{height}" aria-label="{escape(title)}">',
        f'<text x="0" y="14" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (name, value) in enumerate(bars):
        y = 24 + i * row
        w = 0 if top <= 0 else round(width * value / top, 1)
        shown = f"{value * 100:.1f}%" if percent else _fmt(round(value, 2))
        parts.append(
            f'<text x="{left - 4}" y="{y + 12}" font-size="11" text-anchor="end">'
            f"{escape(name[:28])}</text>"
            f'<rect x="{left}" y="{y + 2}" width="{w}" height="{row - 5}" fill="#2b6cb0"/>'
            f'<text x="{left + w + 4}" y="{y + 12}" font-size="11">{shown}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table_html(table: Table, lang: str) -> str:
    head = "".join(f"<th>{escape(label(c, lang))}</th>" for c in table.columns)
    body = []
    for row in table.shown(lang):
        cells = "".join(
            f'<td class="n">{_fmt(v)}</td>'
            if isinstance(v, int | float)
            else f"<td>{escape(_fmt(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f"<h2>{escape(label(table.key, lang))}</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _charts(report: Report, lang: str) -> list[str]:
    if report.kind != "activity":
        kinds = report.table("by_kind")
        return [
            bar_chart(
                label("by_kind", lang),
                [(label(str(r[0]), lang), float(r[2] or 0)) for r in kinds.rows],
            )
        ]
    topic = report.table("by_topic").as_dicts()
    days = report.table("per_day").as_dicts()
    clusters = report.table("by_cluster").as_dicts()
    return [
        bar_chart(
            label("chart_topics", lang), [(str(r["topic"]), float(r["hours"] or 0)) for r in topic]
        ),
        _day_chart(
            label("chart_days", lang), [(str(r["day"]), int(r["plays_ok"] or 0)) for r in days]
        ),
        # uptime from the status history (the inventory's availability), not plays
        bar_chart(
            label("chart_availability", lang),
            [
                (str(r["cluster"]), float(r["availability"]))
                for r in clusters
                if r["availability"] is not None
            ],
            percent=True,
        ),
        bar_chart(
            label("chart_success", lang),
            [
                (str(r["cluster"]), float(r["success_ratio"] or 0))
                for r in clusters
                if r["plays_requested"]
            ],
            percent=True,
        ),
    ]


def _day_chart(title: str, days: list[tuple[str, int]]) -> str:
    """Plays per day as thin vertical bars (a half-year is ~180 of them)."""
    if not days:
        return ""
    top = max(n for _, n in days) or 1
    step, height = 3, 120
    width = step * len(days) + 60
    bars = "".join(
        f'<rect x="{40 + i * step}" y="{20 + height - round(height * n / top)}" width="{step - 1}"'
        f' height="{round(height * n / top)}" fill="#2f855a"><title>{d}: {n}</title></rect>'
        for i, (d, n) in enumerate(days)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height + 40}"'
        f' aria-label="{escape(title)}"><text x="0" y="14" font-size="13" font-weight="bold">'
        f'{escape(title)}</text><text x="0" y="{height + 36}" font-size="10">{days[0][0]}</text>'
        f'<text x="{width - 60}" y="{height + 36}" font-size="10">{days[-1][0]}</text>'
        f'<text x="0" y="30" font-size="10">{top}</text>{bars}</svg>'
    )


def render_html(report: Report, lang: str) -> str:
    title = label(report.kind, lang)
    p = report.period
    summary = "".join(
        f'<tr><th>{escape(label(k, lang))}</th><td class="n">{escape(_fmt(v))}</td></tr>'
        for k, v in report.summary.items()
    )
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{escape(title)} {escape(p.label)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}: {escape(p.label)}</h1>"
        f"<p>{escape(label('from', lang))} {p.first.isoformat()} "
        f"{escape(label('to', lang))} {p.last.isoformat()} ({escape(report.timezone)}). "
        f"{escape(label('generated', lang))} {escape(report.generated_at)}</p>"
        f"<h2>{escape(label('summary', lang))}</h2><table>{summary}</table>"
        + "".join(_charts(report, lang))
        + "".join(_table_html(t, lang) for t in report.tables)
        + "</body></html>"
    )
