"""Screenshots of the console's pages: start the app on the generated scenario (scenario.py),
sign in as each page's role, visit it in Debian's chromium, save `<out>/<name>.png`.

    bash scripts/screenshots.sh [--out docs/console] [--only worklist,receivable]

Adding a page is one entry in PAGES: (name, path, role). The path may name a receivable of the
scenario (`{overdue}`, `{promised}`, … see scenario.RECEIVABLES); role None means not signed in;
`locale` gives the page's language (Accept-Language). A page the app does not serve (404) is
skipped and said so, so the list can run ahead of the console.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import VIEWPORT, Site, browser_unavailable, launched_chromium, running_site, take_screenshot
from .scenario import SEEDED_AT, seed


@dataclass(frozen=True)
class Shot:
    name: str
    path: str
    role: str | None
    locale: str = "en-US"


PAGES: list[Shot] = [
    Shot("login", "/console/login", None),
    Shot("worklist", "/console/worklist", "collector"),
    Shot("receivable", "/console/receivables/{overdue}", "collector"),
    Shot("aging", "/console/reports/aging?group_by=collector", "supervisor"),
    Shot("compliance", "/console/compliance/findings", "supervisor"),
    Shot("kpis", "/console/reports/kpis", "supervisor"),
    Shot("audit", "/console/audit", "auditor"),
    Shot("policy", "/console/policy", "supervisor"),
]


def take(site: Site, browser: Any, shots: list[Shot], out: Path) -> list[tuple[Shot, Path | None, str]]:
    """Each shot in a fresh context (its own session): (shot, the PNG written or None, what happened)."""
    done: list[tuple[Shot, Path | None, str]] = []
    for shot in shots:
        context = browser.new_context(
            base_url=site.url, viewport=VIEWPORT, locale=shot.locale, extra_http_headers={"Accept-Language": shot.locale}
        )
        context.set_default_timeout(10_000)
        try:
            page = context.new_page()
            if shot.role is not None:
                login = page.goto("/console/login")
                if login is None or login.status == 404:
                    done.append((shot, None, "skipped: no sign-in page (/console/login is 404)"))
                    continue
                site.sign_in(page, shot.role)
            response = page.goto(shot.path.format(**site.ids))
            status = response.status if response is not None else 0
            if status == 404:
                done.append((shot, None, "skipped: 404, not built yet"))
                continue
            page.wait_for_load_state("networkidle")
            done.append((shot, take_screenshot(page, out, shot.name), f"HTTP {status}"))
        finally:
            context.close()
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/console"), help="folder for the PNGs (default: docs/console)")
    parser.add_argument("--only", default="", help="comma-separated page names (default: all of PAGES)")
    args = parser.parse_args(argv)
    reason = browser_unavailable()
    if reason:
        print(f"screenshots: {reason}", file=sys.stderr)
        return 2
    only = {n for n in args.only.split(",") if n}
    unknown = only - {s.name for s in PAGES}
    if unknown:
        parser.error(f"no such page: {', '.join(sorted(unknown))}")
    shots = [s for s in PAGES if not only or s.name in only]
    with running_site(at=SEEDED_AT) as site, launched_chromium() as browser:
        seed(site)
        for shot, path, note in take(site, browser, shots, args.out):
            print(f"{shot.name:12} {shot.path:40} {path or '-'}  ({note})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
