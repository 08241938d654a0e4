"""The web console [bảng điều khiển]: Vietnamese first, English on request, phone-sized.

Server-rendered page shells (jinja2) plus small vanilla JavaScript that reads and writes
through the REST API under ``/api/v1`` with the same session cookie and ``X-CSRF-Token``: the
API decides every permission; pages only hide what the caller's permissions would refuse.

A screen is one entry in ``SCREENS`` (``_screens.py``), a template and a script; see
docs/console.md.
"""

from ._i18n import LANGUAGES, Catalogue
from ._pages import CONSOLE_PREFIX, setup_console
from ._screens import SCREENS, Screen

__all__ = ["CONSOLE_PREFIX", "LANGUAGES", "SCREENS", "Catalogue", "Screen", "setup_console"]
