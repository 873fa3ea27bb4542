"""Letters: each kind in each language renders with the receivable's real figures (amounts
and dates formatted per locale, payment details from configuration, the legal basis on the
final notice); a snapshot per template; a PDF whose Chinese text really is in it; a company's
own template replaces the bundled one; an unknown language is 422; a letter for a stage the
receivable has not reached, or for a closed receivable, is 409 (ADR 0037).

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
REMINDER_DATE = {"zh-CN": "2026年3月25日", "en": "March 25, 2026"}
TITLES = {
    ("reminder", "zh-CN"): "付款提醒", ("reminder", "en"): "Payment reminder",
    ("dunning", "zh-CN"): "催款函", ("dunning", "en"): "Payment demand",
    ("final_notice", "zh-CN"): "最后通知", ("final_notice", "en"): "Final notice",
    ("lawyer_letter", "zh-CN"): "律师函", ("lawyer_letter", "en"): "Lawyer's letter",
}
# What brings the receivable to each letter's stage on 20 April (the reminder: 25 March, before due).
STEPS: dict[str, list[tuple[str, str, dict[str, str] | None]]] = {
    "reminder": [],
    "dunning": [],
    "final_notice": [("service", "fall-due", None), ("collector", "escalate", {"reason": "no answer in three weeks"})],
    "lawyer_letter": [
        ("service", "fall-due", None),
        ("collector", "escalate", {"reason": "no answer in three weeks"}),
        ("legal", "refer-to-legal", {"reason": "the final notice went unanswered"}),
    ],
}


def prepare(api: Api, kind: str = "dunning") -> None:
    """CNY 1,200.50 due 1 April 2026, 200.50 paid; brought to `kind`'s stage, and the letter
    written on 20 April (Shanghai), or for a reminder on 25 March."""
    assert api.as_("supervisor").post("/customers", json=CUSTOMER).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-L-1")).status_code == 201
    api.services.clock.at = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
    payment = {"amount": "200.50", "method": "bank_transfer", "paid_on": "2026-03-10", "reference": "B-1"}
    assert api.as_("service").post("/receivables/INV-L-1/record-payment", json=payment).status_code == 200
    api.services.clock.at = datetime(2026, 3, 25, 2, 0, tzinfo=UTC) if kind == "reminder" else datetime(2026, 4, 20, 2, 0, tzinfo=UTC)
    for who, command, body in STEPS[kind]:
        response = api.as_(who).post(f"/receivables/INV-L-1/{command}", json=body)
        assert response.status_code == 200, response.text


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not path.exists():
        if os.environ.get("CI", "").lower() == "true" and not path.exists():
            pytest.fail(f"snapshot {path} is missing; generate it with UPDATE_SNAPSHOTS=1")
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its snapshot"


@pytest.mark.parametrize("kind", KINDS)
def test_each_letter_renders_in_each_language_with_the_receivables_figures(api: Api, kind: str) -> None:
    prepare(api, kind)
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
            assert (REMINDER_DATE[lang] if kind == "reminder" else expected["date"]) in text
            assert "1001 2345 6789 0123 456" in text  # the bank account from the company file
            if kind in ("final_notice", "lawyer_letter"):
                assert ("第五百七十七条" if lang == "zh-CN" else "Article") in text or "Articles 509" in text
            if kind in ("dunning", "final_notice", "lawyer_letter"):
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
    prepare(api, "lawyer_letter")
    response = api.as_("legal").get("/receivables/INV-L-1/letters/lawyer_letter", params={"lang": "zh-CN", "format": "pdf"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    for expected in ("律师函", CUSTOMER["name"], "¥1,000.00", "2026年4月1日", "第五百七十七条"):
        assert expected in text.replace("\n", ""), expected


def test_html_letters_escape_what_the_customer_file_says(api: Api) -> None:
    hostile = CUSTOMER | {"name": "<script>alert(1)</script> & Co"}
    assert api.as_("supervisor").post("/customers", json=hostile).status_code == 201
    assert api.as_("service").post("/receivables", json=invoice("INV-X")).status_code == 201
    api.services.clock.at = datetime(2026, 4, 20, 2, 0, tzinfo=UTC)  # past due: a dunning letter's stage
    html = api.as_("collector").get("/receivables/INV-X/letters/dunning", params={"lang": "en", "format": "html"}).text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html


def test_a_company_template_replaces_the_bundled_one(database_url: str, clock, tmp_path: Path) -> None:
    (tmp_path / "reminder.en.txt.j2").write_text(
        "Our own reminder for {{ customer.name }}: {{ balance|money(currency) }} by {{ due_on|date }}.\n", encoding="utf-8"
    )
    services = make_services(database_url, clock, COLLECTIONS_TEMPLATES_DIR=str(tmp_path))
    try:
        api = Api(services)
        prepare(api, "reminder")
        own = api.as_("collector").get("/receivables/INV-L-1/letters/reminder", params={"lang": "en"}).text
        assert own == f"Our own reminder for {CUSTOMER['name']}: CN¥1,000.00 by April 1, 2026.\n"
        bundled = api.as_("collector").get("/receivables/INV-L-1/letters/reminder", params={"lang": "zh-CN"}).text
        assert "付款提醒" in bundled
    finally:
        services.close()


def test_an_unknown_language_kind_or_format_is_422_and_roles_without_need_are_refused(api: Api) -> None:
    prepare(api, "reminder")
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


def refused(api: Api, kind: str, who: str = "collector") -> dict:
    response = api.as_(who).get(f"/receivables/INV-L-1/letters/{kind}", params={"lang": "en"})
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "/problems/letter-not-allowed" and problem["kind"] == kind
    return problem


def test_a_dunning_letter_before_the_due_date_is_409_rather_than_0_days_overdue(api: Api) -> None:
    prepare(api, "reminder")
    problem = refused(api, "dunning")
    assert (problem["state"], problem["days_past_due"], problem["needs_past_due"]) == ("issued", 0, True)
    assert "past due" in problem["detail"] and "0 days past due" in problem["detail"]
    api.services.clock.at = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)  # the due day itself: still not overdue
    assert refused(api, "dunning")["days_past_due"] == 0
    assert api.as_("collector").get("/receivables/INV-L-1/letters/reminder").status_code == 200
    api.services.clock.at = datetime(2026, 4, 2, 2, 0, tzinfo=UTC)
    assert "1 days overdue" in api.as_("collector").get("/receivables/INV-L-1/letters/dunning", params={"lang": "en"}).text


def test_a_reminder_once_past_due_is_409(api: Api) -> None:
    prepare(api, "dunning")
    problem = refused(api, "reminder")
    assert (problem["state"], problem["days_past_due"], problem["needs_past_due"]) == ("issued", 19, False)
    assert problem["needs_states"] == ["issued", "reminded", "due"]


def test_a_final_notice_needs_an_escalation_and_a_lawyers_letter_needs_legal(api: Api) -> None:
    prepare(api, "dunning")
    for kind, states in (("final_notice", ["overdue_escalated", "legal"]), ("lawyer_letter", ["legal"])):
        problem = refused(api, kind)
        assert (problem["state"], problem["needs_states"], problem.get("needs_past_due")) == ("issued", states, None)
    for who, command, body in STEPS["final_notice"]:
        assert api.as_(who).post(f"/receivables/INV-L-1/{command}", json=body).status_code == 200
    assert api.as_("collector").get("/receivables/INV-L-1/letters/final_notice").status_code == 200
    assert refused(api, "lawyer_letter")["state"] == "overdue_escalated"
    assert api.as_("legal").post("/receivables/INV-L-1/refer-to-legal", json={"reason": "unanswered"}).status_code == 200
    for kind in KINDS:
        expected = 409 if kind == "reminder" else 200
        assert api.as_("legal").get(f"/receivables/INV-L-1/letters/{kind}").status_code == expected, kind


def test_a_settled_or_written_off_receivable_gets_no_letter(api: Api) -> None:
    prepare(api, "lawyer_letter")
    assert api.as_("supervisor").post("/receivables/INV-L-1/request-write-off", json={"reason": "insolvent"}).status_code == 200
    assert api.as_("supervisor-2").post("/receivables/INV-L-1/approve-write-off", json={}).status_code == 200
    for kind in KINDS:
        assert refused(api, kind, "legal")["state"] == "written_off"
    assert api.as_("service").post("/receivables", json=invoice("INV-L-2")).status_code == 201
    payment = {"amount": "1200.50", "method": "bank_transfer", "paid_on": "2026-04-20", "reference": "B-2"}
    assert api.as_("service").post("/receivables/INV-L-2/record-payment", json=payment).status_code == 200
    for kind in KINDS:
        response = api.as_("legal").get(f"/receivables/INV-L-2/letters/{kind}")
        assert (response.status_code, response.json()["state"]) == (409, "settled"), kind


def test_lawyer_letter_is_the_kinds_name_and_lawyer_is_still_accepted(api: Api) -> None:
    prepare(api, "lawyer_letter")
    named = api.as_("legal").get("/receivables/INV-L-1/letters/lawyer_letter", params={"lang": "en"})
    aliased = api.as_("legal").get("/receivables/INV-L-1/letters/lawyer", params={"lang": "en"})
    assert named.status_code == aliased.status_code == 200
    assert named.text == aliased.text
    assert aliased.headers["content-disposition"] == 'inline; filename="lawyer_letter-INV-L-1-en.txt"'
    document = api.client.get("/openapi.json").json()
    (kind,) = [p for p in document["paths"]["/receivables/{receivable_ref}/letters/{kind}"]["get"]["parameters"] if p["name"] == "kind"]
    assert kind["schema"]["enum"] == ["reminder", "dunning", "final_notice", "lawyer_letter"]
