"""Exports of a report: CSV, JSON, XLSX (openpyxl) and a printable HTML page.

Rendering is pure (bytes out); ``write_report`` writes a file atomically (temp + rename) in a
worker thread so the event loop never blocks on openpyxl or the disk.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ._html import render_html
from ._model import Report, Table, label

__all__ = ["CONTENT_TYPES", "FORMATS", "render", "render_async", "write_report"]

FORMATS = ("csv", "xlsx", "json", "html")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _summary_table(report: Report) -> Table:
    rows: list[list[str | int | float | None]] = [
        ["period", report.period.label],
        ["from", report.period.first.isoformat()],
        ["to", report.period.last.isoformat()],
    ]
    rows += [[k, v] for k, v in report.summary.items()]
    return Table("summary", ["metric", "value"], rows)


def _translated_summary(report: Report, lang: str) -> list[list[str | int | float | None]]:
    return [[label(str(k), lang), v] for k, v in _summary_table(report).rows]


def render_csv(report: Report, lang: str) -> bytes:
    """One file: a titled section per table, separated by a blank line (UTF-8 with BOM)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    sections = [(_summary_table(report), _translated_summary(report, lang))]
    sections += [(t, t.shown(lang)) for t in report.tables]
    for i, (table, rows) in enumerate(sections):
        if i:
            w.writerow([])
        w.writerow([label(table.key, lang)])
        w.writerow([label(c, lang) for c in table.columns])
        w.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _xlsx_safe(value: Any) -> Any:
    """Names typed by users may hold control characters that XLSX cannot store: drop them."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def render_xlsx(report: Report, lang: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    first = book.active
    if first is not None:
        book.remove(first)
    sections = [(_summary_table(report), _translated_summary(report, lang))]
    sections += [(t, t.shown(lang)) for t in report.tables]
    for table, rows in sections:
        sheet = book.create_sheet(label(table.key, lang)[:31])
        sheet.append([label(c, lang) for c in table.columns])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append([_xlsx_safe(value) for value in row])
        for i, column in enumerate(table.columns):
            width = max([len(label(column, lang)), *(len(str(r[i] or "")) for r in rows)])
            sheet.column_dimensions[get_column_letter(i + 1)].width = min(width + 2, 60)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def render(report: Report, fmt: str, lang: str = "vi") -> bytes:
    if fmt == "csv":
        return render_csv(report, lang)
    if fmt == "json":
        return json.dumps(report.as_json(), ensure_ascii=False, indent=2).encode("utf-8")
    if fmt == "xlsx":
        return render_xlsx(report, lang)
    if fmt == "html":
        return render_html(report, lang).encode("utf-8")
    raise ValueError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")


async def render_async(report: Report, fmt: str, lang: str = "vi") -> bytes:
    return await asyncio.to_thread(render, report, fmt, lang)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def write_report(report: Report, fmt: str, path: Path, lang: str = "vi") -> int:
    """Render and write ``path`` atomically off the loop; returns the byte count."""

    def work() -> int:
        data = render(report, fmt, lang)
        _write_atomic(path, data)
        return len(data)

    return await asyncio.to_thread(work)
