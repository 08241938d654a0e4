"""The console's screens: one entry each drives its route, its menu link and its script.

Adding a screen: append a ``Screen``, write ``templates/<name>.html`` (extending base.html)
and ``static/<name>.js``, add its strings to both catalogues. ``permission`` only decides
whether the menu shows the link and whether the page shell is served; the API still checks
every call it makes.
"""

from __future__ import annotations

from dataclasses import dataclass

from station.api import Permission

__all__ = ["SCREENS", "Screen"]


@dataclass(frozen=True)
class Screen:
    name: str  # route segment, template and script name; "" is the dashboard
    title_key: str  # catalogue key of the menu label and page title
    permission: Permission
    template: str
    script: str

    @property
    def path(self) -> str:
        return f"/console/{self.name}" if self.name else "/console/"


def _screen(name: str, permission: Permission = Permission.READ) -> Screen:
    base = name or "dashboard"
    return Screen(name, f"nav.{base}", permission, f"{base}.html", f"{base}.js")


SCREENS: tuple[Screen, ...] = (
    _screen(""),
    _screen("media"),
    _screen("schedules"),
    _screen("live", Permission.LIVE),
    _screen("emergency", Permission.EMERGENCY),
    _screen("clusters"),
    # villages & zones, CSV import: their titles live under their own catalogue prefixes
    Screen("villages", "villages.title", Permission.READ, "villages.html", "villages.js"),
    Screen("import", "import.title", Permission.CLUSTERS_WRITE, "import.html", "import.js"),
    _screen("plays"),
    _screen("reports"),
    # upstream bulletins, topic catalogue: titles under their own catalogue prefixes
    Screen("bulletins", "bulletins.title", Permission.READ, "bulletins.html", "bulletins.js"),
    Screen("topics", "topics.title", Permission.READ, "topics.html", "topics.js"),
    _screen("audit", Permission.AUDIT_READ),
    _screen("users", Permission.USERS_MANAGE),
)
