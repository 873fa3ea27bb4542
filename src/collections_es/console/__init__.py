"""The console: server-rendered pages for the people who collect, supervise and audit,
under /console/ in the same app (ADR 0040). `router` holds its routes; `web` what every
page shares (sessions, permissions, CSRF, headers, templates, navigation)."""

from .routes import PUBLIC_PATHS, router
from .web import NAV, Page, console_command, console_view

__all__ = ["NAV", "PUBLIC_PATHS", "Page", "console_command", "console_view", "router"]
