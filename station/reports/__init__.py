"""Activity and inventory reports [báo cáo] with CSV/XLSX/JSON/HTML exports (docs/compliance.md).

``activity_report`` and ``inventory_report`` compute a ``Report`` from the database in short
sessions; ``render``/``write_report`` export it; ``push_report`` queues it for the Source
Information System through the upstream outbox; ``_cadence`` does that by itself for each
closed period (config ``upstream.push``). ``_topics`` edits the topic catalogue.
"""

from ._activity import activity_report
from ._build import KINDS, build_report, choose_period
from ._export import CONTENT_TYPES, FORMATS, render, render_async, write_report
from ._inventory import inventory_report
from ._model import LANGS, Report, Table, label
from ._periods import Period, parse_period, period_between
from ._push import push_report

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "KINDS",
    "LANGS",
    "Period",
    "Report",
    "Table",
    "activity_report",
    "build_report",
    "choose_period",
    "inventory_report",
    "label",
    "parse_period",
    "period_between",
    "push_report",
    "render",
    "render_async",
    "write_report",
]
