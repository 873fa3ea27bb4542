"""The HTTP contract lives in the repository (docs/api.md): its route table is generated from
the routes, every lifecycle command is described, what is not built is marked planned, and no
file of the repository sends a reader to a document outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from collections_es.api.api_docs import END, START, render_routes, with_routes
from collections_es.api.route_access import documented_app, endpoints
from collections_es.domain import lifecycle

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "api.md"
OUTSIDE = "../" + "shared"  # spelled so that this file does not hold it
#: Documents of the project's steering folder, which a user's clone does not have: named bare
#: (not as docs/design.md, docs/domain.md, the repository's own copies), they point outside.
OUTSIDE_DOCUMENTS = re.compile(r"(?<![\w/.-])(" + "|".join(("DESIGN", "DOMAIN", "LIBRARIES", "STYLE", "API")) + r")\.md")


def test_the_route_table_in_docs_api_md_is_generated_from_the_routes():
    text = CONTRACT.read_text(encoding="utf-8")
    assert text == with_routes(text), "docs/api.md's route table is stale; regenerate it with `collections-es docs`"
    table = render_routes()
    for endpoint in endpoints(documented_app()):
        assert f"| {endpoint.method} | `{endpoint.path}` |" in table, (endpoint.method, endpoint.path)
    assert "**nothing declared**" not in table


def test_the_route_table_gives_what_each_route_takes_and_who_may_call_it():
    rows = {row.split(" | ")[1].strip("`") + " " + row.split(" | ")[0].strip("| "): row for row in render_routes().splitlines() if row.startswith("| ")}
    payment = rows["/receivables/{receivable_ref}/record-payment POST"]
    assert "`{amount, method, paid_on, reference, override?}`" in payment
    assert payment.endswith("| service, collector, supervisor |")
    assert "`?as_of=&version=`" in rows["/receivables/{receivable_ref} GET"]
    assert rows["/healthz GET"].endswith("| anyone, no credentials |")
    assert rows["/policy GET"].endswith("| every role |")
    assert "(sandbox clock only)" in rows["/sandbox/clock GET"]


def test_splicing_the_table_needs_both_markers():
    with pytest.raises(ValueError, match="markers"):
        with_routes("# no table here\n")
    assert with_routes(f"a\n{START}\nold\n{END}\nb\n") == f"a\n{render_routes()}\nb\n"


def test_every_lifecycle_command_is_described_in_the_contract():
    text = CONTRACT.read_text(encoding="utf-8")
    prose = text.split(START)[0]
    missing = [c for c in lifecycle.COMMANDS if f"`{c.replace('_', '-')}`" not in prose]
    assert missing == []


def test_every_section_of_the_contract_is_built_and_none_is_marked_planned():
    headings = re.findall(r"^## (.+)$", CONTRACT.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert [h for h in headings if "planned" in h] == []
    assert {"Conventions", "Auth", "Customers", "Receivables", "Views", "Communications", "Routes"} <= set(headings)
    assert [h for h in headings if h.startswith("Integration")], "issue 14's integration is built whole"
    assert "Console" in headings, "issue 12's console is built whole"
    assert "After collection" in headings, "issue 17 is built whole"
    assert "Strategies, holds, fees" in headings, "issue 13 is built whole"
    assert "Customer portal" in headings, "issue 15's portal is built whole"


def tracked_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked sdist)
        return [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts and ".venv" not in p.parts]
    return [ROOT / name for name in listed.decode().split("\0") if name]


def test_no_file_of_the_repository_points_at_documents_outside_it():
    pointing = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        if OUTSIDE in text or OUTSIDE_DOCUMENTS.search(text):
            pointing.append(str(path.relative_to(ROOT)))
    assert pointing == []
