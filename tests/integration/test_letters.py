"""Letters: each kind in each language renders with the receivable's real figures (amounts
and dates formatted per locale, payment details from configuration, the legal basis on the
final notice); a snapshot per template; a PDF whose Chinese text really is in it; a company's
own template replaces the bundled one; an unknown language is 422.

Snapshots live in tests/snapshots/; after an intended template change regenerate them with
UPDATE_SNAPSHOTS=1 and review the diff.
"""

from __future__ import annotations

import html
import io
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collections_es.letters.figures import figures
from collections_es.letters import KINDS, LANGUAGES, MESSAGE_KINDS, Letters, load_company

from ..conftest import make_services
from .conftest import CUSTOMER, Api, invoice

SNAPSHOTS = Path(__file__).parent.parent / "snapshots" / "letters"
EXPECTED = {
    "zh-CN": {"balance": "¥1,000.00", "amount": "¥1,200.50", "due": "2026年4月1日", "date": "2026年4月20日"},
    "en": {"balance": "CN¥1,000.00", "amount": "CN¥1,200.50", "due": "April 1, 2026", "date": "April 20, 2026"},
}
TITLES = {
    ("reminder", "zh-CN"): "付款提醒", ("reminder", "en"): "Payment reminder",
    ("dunning", "zh-CN"): "催款函", ("dunning", "en"): "Payment demand",
    ("final_notice", "zh-CN"): "最后通知", ("final_notice", "en"): "Final notice",
    ("lawyer", "zh-CN"): "律师函", ("lawyer", "en"): "Lawyer's letter",
}


def prepare(api: Api) -> None:
    """CNY 1,200.50 due 1 April 2026, 200.50 paid; the letter is written on 20 April (Shanghai)."""
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-L-1")).status_code == 201
    api.services.clock.at = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    payment = {"amount": "200.50", "method": "bank_transfer", "paid_on": "2026-03-10", "reference": "B-1"}
    assert api.as_("service").post("/receivables/INV-L-1/record-payment", json=payment).status_code == 200
    api.services.clock.at = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        if os.environ.get("CI", "").lower() == "true" and not path.exists():
            pytest.fail(f"snapshot {path} is missing; generate it with UPDATE_SNAPSHOTS=1")
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its snapshot"


@pytest.mark.parametrize("kind", KINDS)
def test_each_letter_renders_in_each_language_with_the_receivables_figures(api: Api, kind: str) -> None:
    prepare(api)
    for lang in LANGUAGES:
        for fmt in ("txt", "html"):
            response = api.as_("collector").get(f"/receivables/INV-L-1/letters/{kind}", params={"lang": lang, "format": fmt})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain" if fmt == "txt" else "text/html")
            assert response.headers["content-language"] == lang
            text = html.unescape(response.text) if fmt == "html" else response.text
            expected = EXPECTED[lang]
            assert TITLES[(kind, lang)] in text
            assert "INV-L-1" in text and CUSTOMER["name"] in text
            assert expected["balance"] in text and expected["amount"] in text and expected["due"] in text
            assert expected["date"] in text
            assert "1001 2345 6789 0123 456" in text  # the bank account from the company file
            if kind in ("final_notice", "lawyer"):
                assert ("第五百七十七条" if lang == "zh-CN" else "Article") in text or "Articles 509" in text
            if kind in ("dunning", "final_notice", "lawyer"):
                assert ("19 天" if lang == "zh-CN" else "19 days overdue") in text
            check_snapshot(f"{kind}.{lang}.{fmt}", response.text)


def test_each_message_template_matches_its_snapshot(services) -> None:
    letters = Letters(load_company(None))
    app = services.app
    from collections_es.application.service import Request
    from collections_es.domain.trail import Actor

    actor = Request(Actor("service-1", "service"))
    app.register_customer(actor, **{k: v for k, v in CUSTOMER.items()})
    r = app.issue_receivable(actor, **invoice("INV-M-1") | {"issued_on": datetime(2026, 3, 2).date(), "due_on": datetime(2026, 4, 1).date()}).resource
    customer = app.get_customer(CUSTOMER["customer_id"])
    for kind in MESSAGE_KINDS:
        data = figures(r, customer, datetime(2026, 4, 3, 2, 0, tzinfo=UTC), kind, letters.company)
        for lang in LANGUAGES:
            for channel in ("email", "sms"):
                subject, body = letters.message(channel, kind, lang, data)
                assert "INV-M-1" in body and EXPECTED[lang]["balance"].replace("1,000.00", "1,200.50") in body
                if channel == "email":
                    assert "INV-M-1" in subject and EXPECTED[lang]["due"] in body
                check_snapshot(f"{channel}_{kind}.{lang}.txt", f"{subject}\n---\n{body}")


def test_a_pdf_letter_carries_its_chinese_text(api: Api) -> None:
    from pypdf import PdfReader

    if not api.services.letters.font.is_file():
        pytest.fail(f"the CJK font {api.services.letters.font} is missing: scripts/test.sh installs fonts-wqy-zenhei")
    prepare(api)
    response = api.as_("legal").get("/receivables/INV-L-1/letters/lawyer", params={"lang": "zh-CN", "format": "pdf"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    for expected in ("律师函", CUSTOMER["name"], "¥1,000.00", "2026年4月1日", "第五百七十七条"):
        assert expected in text.replace("\n", ""), expected


def test_html_letters_escape_what_the_customer_file_says(api: Api) -> None:
    hostile = CUSTOMER | {"name": "<script>alert(1)</script> & Co"}
    assert api.as_("supervisor").post("/customers", json=hostile).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-X")).status_code == 201
    html = api.as_("collector").get("/receivables/INV-X/letters/dunning", params={"lang": "en", "format": "html"}).text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html


def test_a_company_template_replaces_the_bundled_one(database_url: str, clock, tmp_path: Path) -> None:
    (tmp_path / "reminder.en.txt.j2").write_text(
        "Our own reminder for {{ customer.name }}: {{ balance|money(currency) }} by {{ due_on|date }}.\n", encoding="utf-8"
    )
    services = make_services(database_url, clock, COLLECTIONS_TEMPLATES_DIR=str(tmp_path))
    try:
        api = Api(services)
        prepare(api)
        own = api.as_("collector").get("/receivables/INV-L-1/letters/reminder", params={"lang": "en"}).text
        assert own == f"Our own reminder for {CUSTOMER['name']}: CN¥1,000.00 by April 1, 2026.\n"
        bundled = api.as_("collector").get("/receivables/INV-L-1/letters/reminder", params={"lang": "zh-CN"}).text
        assert "付款提醒" in bundled
    finally:
        services.close()


def test_an_unknown_language_kind_or_format_is_422_and_roles_without_need_are_refused(api: Api) -> None:
    prepare(api)
    for params, path, field in (
        ({"lang": "fr"}, "reminder", "lang"),
        ({"format": "docx"}, "reminder", "format"),
        ({}, "apology", "kind"),
    ):
        response = api.as_("collector").get(f"/receivables/INV-L-1/letters/{path}", params=params)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field
    assert api.as_("auditor").get("/receivables/INV-L-1/letters/reminder").status_code == 403
    assert api.as_("collector").get("/receivables/INV-NONE/letters/reminder").status_code == 404
