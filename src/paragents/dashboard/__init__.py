"""The web dashboard: a FastAPI app over a run store, a live page, and static reports.

``paragents dashboard`` serves :func:`create_app` with :func:`serve` (loopback only,
unless a token is set); ``paragents runs show --html/--png`` writes :func:`html_report`
and :func:`png_gantt`.  Modules: ``data`` (what a run's page shows), ``app`` (the API,
the event stream, ``/metrics``), ``server`` (uvicorn and the bind rule), ``report``
(static HTML and PNG), ``static/`` (the page: HTML, CSS, vanilla JavaScript and SVG).
"""

from .app import create_app
from .report import html_report, png_gantt
from .server import BackgroundServer, DashboardError, check_bind, serve

__all__ = ["BackgroundServer", "DashboardError", "check_bind", "create_app", "html_report", "png_gantt", "serve"]
