"""A report as data: a summary and named tables, with Vietnamese and English labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._periods import Period

__all__ = ["LANGS", "Cell", "Report", "Table", "label"]

Cell = str | int | float | None
LANGS = ("vi", "en")

# key -> (vi, en). Every table name, column key and summary key appears here.
_LABELS: dict[str, tuple[str, str]] = {
    "activity": ("Báo cáo hoạt động", "Activity report"),
    "inventory": ("Báo cáo cụm loa", "Inventory report"),
    "summary": ("Tổng hợp", "Summary"),
    "metric": ("Chỉ tiêu", "Metric"),
    "value": ("Giá trị", "Value"),
    "period": ("Kỳ báo cáo", "Period"),
    "from": ("Từ ngày", "From"),
    "to": ("Đến ngày", "To"),
    "by_topic": ("Theo chủ đề", "By topic"),
    "by_source": ("Theo nguồn", "By source"),
    "by_cluster": ("Theo cụm loa", "By cluster"),
    "by_village": ("Theo thôn", "By village"),
    "by_language": ("Theo ngôn ngữ", "By language"),
    "per_day": ("Theo ngày", "Per day"),
    "by_kind": ("Theo loại cụm loa", "By cluster kind"),
    "by_status": ("Theo trạng thái", "By status"),
    "installations": ("Lắp đặt trong kỳ", "Installations in the period"),
    "villages": ("Thôn được phủ sóng", "Village coverage"),
    "sessions": ("Số lượt phát", "Broadcasts"),
    "sessions_aired": ("Lượt phát thành công", "Broadcasts aired"),
    "programmes_aired": ("Chương trình đã phát", "Programmes aired"),
    "bulletins_aired": ("Bản tin cấp trên đã phát", "Upstream bulletins aired"),
    "emergency_sessions": ("Phát khẩn cấp", "Emergency broadcasts"),
    "emergency_aired": ("Phát khẩn cấp thành công", "Emergency broadcasts aired"),
    "plays_requested": ("Lượt phát yêu cầu", "Plays requested"),
    "plays_ok": ("Lượt phát thành công", "Successful plays"),
    "plays_on_time": ("Lượt phát đúng giờ", "Plays on time"),
    "plays_interrupted": ("Lượt phát bị ngắt", "Plays interrupted"),
    "success_ratio": ("Tỷ lệ thành công", "Success ratio"),
    "airtime_ms": ("Thời lượng (ms)", "Airtime (ms)"),
    "hours": ("Số giờ phát", "Hours broadcast"),
    "cluster_hours": ("Giờ phát cụm loa", "Cluster-hours"),
    "on_time_ms": ("Ngưỡng đúng giờ (ms)", "On-time tolerance (ms)"),
    "topic": ("Mã chủ đề", "Topic code"),
    "title": ("Tên", "Title"),
    "group": ("Nhóm", "Group"),
    "source": ("Nguồn", "Source"),
    "language": ("Ngôn ngữ", "Language"),
    "cluster": ("Cụm loa", "Cluster"),
    "village": ("Thôn", "Village"),
    "kind": ("Loại", "Kind"),
    "status": ("Trạng thái", "Status"),
    "day": ("Ngày", "Day"),
    "count": ("Số lượng", "Count"),
    "total": ("Tổng số", "Total"),
    "working": ("Hoạt động", "Working"),
    "not_working": ("Không hoạt động", "Not working"),
    "retired": ("Đã thay/thanh lý", "Retired"),
    "installed_as": ("Hình thức", "Kind of work"),
    "installed_on": ("Ngày lắp đặt", "Installed on"),
    "replaces": ("Thay thế cho", "Replaces"),
    "households": ("Số hộ", "Households"),
    "covered": ("Được phủ sóng", "Covered"),
    "clusters_working": ("Cụm loa hoạt động", "Working clusters"),
    "clusters_total": ("Tổng số cụm loa", "Clusters"),
    "villages_total": ("Tổng số thôn", "Villages"),
    "villages_covered": ("Thôn được phủ sóng", "Villages covered"),
    "villages_not_covered": ("Thôn chưa được phủ sóng", "Villages not covered"),
    "households_covered": ("Số hộ được phủ sóng", "Households covered"),
    "new_station": ("Thiết lập mới", "New station"),
    "replacement": ("Thay thế", "Replacement"),
    "extension": ("Mở rộng", "Extension"),
    "own": ("Tự sản xuất", "Own production"),
    "relay": ("Tiếp âm", "Relay"),
    "upstream": ("Hệ thống thông tin nguồn", "Source Information System"),
    "live": ("Trực tiếp", "Live"),
    "ict": ("Cụm loa CNTT-VT", "ICT"),
    "fm": ("Cụm loa FM", "FM"),
    "wired": ("Cụm loa có dây", "Wired"),
    "bridge": ("Bộ tích hợp", "Bridge"),
    "yes": ("Có", "Yes"),
    "no": ("Không", "No"),
    "chart_topics": ("Thời lượng theo chủ đề (giờ)", "Airtime by topic (hours)"),
    "chart_days": ("Lượt phát thành công theo ngày", "Successful plays per day"),
    "chart_availability": (
        "Tỷ lệ thời gian trực tuyến theo cụm loa",
        "Cluster availability (time online)",
    ),
    "chart_success": ("Tỷ lệ phát thành công theo cụm loa", "Play success ratio by cluster"),
    "generated": ("Lập lúc", "Generated"),
    "availability": ("Tỷ lệ thời gian trực tuyến", "Availability (time online)"),
}


def label(key: str, lang: str) -> str:
    pair = _LABELS.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]


@dataclass
class Table:
    key: str  # a label key, e.g. "by_topic"
    columns: list[str]  # label keys
    rows: list[list[Cell]] = field(default_factory=list)
    # columns whose values are label keys themselves (translated on export)
    coded: frozenset[str] = frozenset()

    def as_dicts(self) -> list[dict[str, Cell]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def shown(self, lang: str) -> list[list[Cell]]:
        """Rows with coded cells translated."""
        idx = [i for i, c in enumerate(self.columns) if c in self.coded]
        out = []
        for row in self.rows:
            cells = list(row)
            for i in idx:
                if isinstance(cells[i], str):
                    cells[i] = label(str(cells[i]), lang)
            out.append(cells)
        return out


@dataclass
class Report:
    kind: str  # activity | inventory
    period: Period
    timezone: str
    summary: dict[str, Cell]
    tables: list[Table]
    generated_at: str = ""

    def table(self, key: str) -> Table:
        return next(t for t in self.tables if t.key == key)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "period": {
                "label": self.period.label,
                "from": self.period.first.isoformat(),
                "to": self.period.last.isoformat(),
                "due": self.period.due.isoformat() if self.period.due else None,
                "timezone": self.timezone,
            },
            "generated_at": self.generated_at,
            "summary": dict(self.summary),
            "tables": {t.key: t.as_dicts() for t in self.tables},
        }
