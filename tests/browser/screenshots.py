"""Screenshots of the console's pages: start the app on the generated scenario (scenario.py),
sign in as each page's role, visit it in Debian's chromium, save `<out>/<name>.png`.

    bash scripts/screenshots.sh [--out docs/console] [--only worklist,receivable]

Adding a page is one entry in PAGES: (name, path, role). The path may name a receivable of the
scenario (`{overdue}`, `{promised}`, … see scenario.RECEIVABLES); role None means not signed in;
`locale` gives the page's language (Accept-Language); `sandbox` takes the page from a second app
on the sandbox clock (its pages exist only there). A page the app does not serve (404) is skipped
and said so, so the list can run ahead of the console. Each PNG is the viewport (1280×800), not the
whole page: small files, and the top of a page is what a reader sees first.
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
    sandbox: bool = False


PAGES: list[Shot] = [
    Shot("login", "/console/login", None),
    Shot("worklist", "/console/worklist", "collector"),
    Shot("receivable", "/console/receivables/{overdue}", "collector"),
    Shot("aging", "/console/reports/aging?group_by=collector", "supervisor"),
    Shot("compliance", "/console/compliance/findings", "supervisor"),
    Shot("kpis", "/console/reports/kpis", "supervisor"),
    Shot("audit", "/console/audit/verify?run=true", "auditor"),
    Shot("policy", "/console/policy", "supervisor"),
    Shot("sandbox-clock", "/console/sandbox/clock", "supervisor", sandbox=True),
    Shot("receivable-zh-CN", "/console/receivables/{promised}", "supervisor", locale="zh-CN"),
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
            done.append((shot, take_screenshot(page, out, shot.name, full_page=False), f"HTTP {status}"))
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
    with launched_chromium() as browser:
        for sandbox in (False, True):
            these = [s for s in shots if s.sandbox == sandbox]
            if not these:
                continue
            settings = {"COLLECTIONS_CLOCK": "sandbox"} if sandbox else {}
            with running_site(at=SEEDED_AT, **settings) as site:
                if sandbox:
                    seed_sandbox(site)
                else:
                    seed(site)
                    adopt_a_second_policy(site)
                for shot, path, note in take(site, browser, these, args.out):
                    print(f"{shot.name:16} {shot.path:40} {path or '-'}  ({note})")
    return 0


def adopt_a_second_policy(site: Site) -> None:
    """A second policy version, so the policy page has changes to show."""
    policy = site.api.as_("supervisor").get("/policy").json()["policy"]
    policy |= {"version": "2026.2", "escalate_after_days": policy["escalate_after_days"] + 15}
    policy["contact"] = policy["contact"] | {"max_phone_per_day": policy["contact"]["max_phone_per_day"] + 1}
    response = site.api.client.put("/policy", json=policy, headers=site.api.headers("supervisor"))
    assert response.status_code == 200, response.text


def seed_sandbox(site: Site) -> None:
    """A receivable on the sandbox clock (which starts at the system's now), so moving the clock
    on its page has a timer to fire."""
    from ..integration.conftest import CUSTOMER, invoice

    site.api.as_("supervisor").post("/customers", json=CUSTOMER)
    site.api.as_("service").post("/receivables", json=invoice())


if __name__ == "__main__":
    sys.exit(main())
