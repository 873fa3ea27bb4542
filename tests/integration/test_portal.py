"""The customer portal over HTTP: links that are signed, expire and can be revoked; a page that
shows one customer's open receivables and how to pay (its QR code read back by a real decoder);
forms that record the customer's own commands; and nothing of any other customer reachable."""

from __future__ import annotations

import base64
import io
import re
from datetime import timedelta
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from collections_es.adapters.api_keys import KeyFileError
from collections_es.api.present import resolve_id
from collections_es.application.clock import FixedClock
from collections_es.application.service import Request as CommandRequest
from collections_es.domain.errors import NotFoundError
from collections_es.domain.trail import customer_actor

from ..conftest import make_services, START
from .conftest import CUSTOMER, Api, invoice

OTHER = CUSTOMER | {"customer_id": "C-BJ-2", "name": "北京另一家公司", "timezone": "Asia/Shanghai"}
DUE = "2026-02-20"  # before START: the receivables fall due at once


def setup(api: Api) -> None:
    """Two customers, each with a receivable past due; the first's also with a letter delivered."""
    service = api.as_("service")
    assert service.post("/customers", json=CUSTOMER).status_code == 201
    assert service.post("/customers", json=OTHER).status_code == 201
    for number, customer in (("INV-A-1", CUSTOMER), ("INV-B-1", OTHER)):
        body = invoice(number, customer_id=customer["customer_id"], issued_on="2026-01-20", due_on=DUE)
        assert service.post("/receivables", json=body).status_code == 201
        assert service.post(f"/receivables/{number}/fall-due", json={}).status_code == 200
    delivered = {"message_id": "MSG-1", "channel": "email", "template": "first_dunning", "delivered_at": "2026-02-25T02:00:00Z"}
    assert service.post("/receivables/INV-A-1/record-delivery", json=delivered).status_code == 200


def link(api: Api, customer_id: str = "C-SH-1", **body: Any) -> str:
    response = api.as_("collector").post(f"/customers/{customer_id}/portal-link", json=body)
    assert response.status_code == 201, response.text
    return response.json()["url"].removeprefix("http://testserver")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def post(api: Api, url: str, ref: str, command: str, csrf: str | None = None, **form: str):
    """Send a form of the page at `url` (its CSRF token read from the page unless given)."""
    if csrf is None:
        page = api.client.get(url)
        assert page.status_code == 200
        csrf = csrf_of(page.text)
    return api.client.post(f"{url}/receivables/{ref}/{command}?lang=en", data={"csrf": csrf, **form}, follow_redirects=False)


def version_of(api: Api, ref: str) -> int:
    return api.as_("auditor").get(f"/receivables/{ref}").json()["version"]


@pytest.fixture
def portal(sqlite_url: str) -> Iterator[Api]:
    """Two customers on SQLite (the links' own table is tried on PostgreSQL too, below)."""
    services = make_services(sqlite_url, FixedClock(START))
    api = Api(services)
    setup(api)
    yield api
    services.close()


def test_a_link_shows_the_customers_balance_letters_and_how_to_pay(portal):
    url = link(portal)
    page = portal.client.get(url + "?lang=en")
    assert page.status_code == 200
    text = page.text
    assert "Invoice INV-A-1" in text and "CN¥1,200.50" in text
    assert "Payment demand (e-mail)" in text  # the letter delivered
    assert "中国工商银行上海市分行营业部" in text and "1001 2345 6789 0123 456" in text  # the CNY account
    assert "Alipay" in text and "WeChat Pay" in text
    assert "INV-B-1" not in text  # the other customer's
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    chinese = portal.client.get(url, headers={"Accept-Language": "zh-CN"})
    assert "应付金额" in chinese.text and "付款方式" in chinese.text


def decoded(data_uri: str) -> str:
    png = base64.b64decode(data_uri.split(",", 1)[1])
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return found.text


def test_the_qr_code_decodes_to_the_payment_details_shown(portal):
    import html as html_lib

    text = portal.client.get(link(portal) + "?lang=en").text
    qr = re.search(r'src="(data:image/png;base64,[^"]+)"[^>]*data-qr="transfer"', text).group(1)
    shown = html_lib.unescape(re.search(r'<pre data-qr-text="transfer">(.*?)</pre>', text, re.S).group(1))
    assert decoded(qr) == shown
    assert "CNY 1200.50" in shown and "INV-A-1" in shown and "1001 2345 6789 0123 456" in shown
    alipay = re.search(r'src="(data:image/png;base64,[^"]+)"[^>]*data-qr="alipay"', text).group(1)
    assert decoded(alipay) == "https://qr.alipay.com/fkx00000example"


def test_an_altered_link_is_a_404_page_that_says_what_to_do(portal):
    url = link(portal)
    prefix, payload, signature = url.removeprefix("/portal/").split(".")
    other_customer = base64.urlsafe_b64encode(b"C-BJ-2\n0\n9999999999").rstrip(b"=").decode()
    for altered in (
        f"{prefix}.{payload}.{signature[:-2]}AA",
        f"{prefix}.{other_customer}.{signature}",
        f"{prefix}.{payload}",
        "not-a-token",
    ):
        response = portal.client.get(f"/portal/{altered}?lang=en")
        assert response.status_code == 404, altered
        assert "This link does not work" in response.text and "Ask your contact" in response.text
        assert "INV-A-1" not in response.text


def test_an_expired_link_is_a_404(portal):
    url = link(portal, valid_days=3)
    assert portal.client.get(url).status_code == 200
    portal.services.clock.at = START + timedelta(days=3)
    assert portal.client.get(url).status_code == 404


def test_a_link_lives_no_longer_than_the_policy_allows(portal):
    response = portal.as_("collector").post("/customers/C-SH-1/portal-link", json={"valid_days": 91})
    assert response.status_code == 422 and response.json()["rule_id"] == "portal.link_too_long"
    assert portal.as_("collector").post("/customers/NOBODY/portal-link", json={}).status_code == 404


def test_a_new_link_may_revoke_the_old_ones_and_all_can_be_revoked(api):
    portal = api
    setup(portal)
    old = link(portal)
    kept = link(portal)
    assert portal.client.get(old).status_code == 200
    new = link(portal, revoke_previous=True)
    assert portal.client.get(old).status_code == 404 and portal.client.get(kept).status_code == 404
    assert portal.client.get(new).status_code == 200
    other = link(portal, "C-BJ-2")
    response = portal.client.delete("/customers/C-SH-1/portal-links", headers=portal.headers("supervisor"))
    assert response.status_code == 200
    assert portal.client.get(new).status_code == 404
    assert portal.client.get(other).status_code == 200  # another customer's links stay


def test_the_customer_promises_to_pay_within_the_policys_limits_and_sees_the_promise(portal):
    url = link(portal)
    too_far = post(portal, url, "INV-A-1", "promise-to-pay", amount="1200.50", promised_on="2026-05-01")
    assert too_far.status_code == 422 and "later than we can accept" in too_far.text
    assert version_of(portal, "INV-A-1") == 3  # issued, fell due, delivery: nothing more
    done = post(portal, url, "INV-A-1", "promise-to-pay", amount="600.00", promised_on="2026-03-10", note="half now")
    assert done.status_code == 303
    page = portal.client.get(done.headers["location"])
    assert "your promise is recorded" in page.text
    assert "You promised to pay CN¥600.00 by Mar 10, 2026." in page.text
    last = portal.as_("auditor").get("/receivables/INV-A-1/history").json()[-1]
    assert (last["type"], last["actor"], last["role"]) == ("PromiseMade", "customer:C-SH-1", "customer")


def test_a_proposed_plan_is_accepted_or_declined_by_a_collector_and_the_customer_sees_which(portal):
    url = link(portal)
    six = "\n".join(f"2026-0{m}-01 200.00" for m in range(4, 10)) + "\n2026-10-01 0.50"
    assert post(portal, url, "INV-A-1", "propose-installment-plan", installments=six).status_code == 422
    sent = post(portal, url, "INV-A-1", "propose-installment-plan", installments="2026-03-20 600.50\n2026-04-20 600.00")
    assert sent.status_code == 303
    assert 'data-proposal="pending"' in portal.client.get(url).text
    again = post(portal, url, "INV-A-1", "propose-installment-plan", installments="2026-03-20 1200.50")
    assert again.status_code == 422 and "already waiting" in again.text
    declined = portal.as_("collector").post("/receivables/INV-A-1/decline-installment-proposal", json={"reason": "half by the 15th, please"})
    assert declined.status_code == 200 and declined.json()["installment_proposal"]["status"] == "declined"
    assert "half by the 15th, please" in portal.client.get(url + "?lang=en").text
    assert post(portal, url, "INV-A-1", "propose-installment-plan", installments="2026-03-15 600.50\n2026-04-15 600.00").status_code == 303
    accepted = portal.as_("collector").post("/receivables/INV-A-1/accept-installment-proposal", json={})
    assert accepted.status_code == 200
    body = accepted.json()
    assert body["state"] == "promised" and [i["amount"] for i in body["installment_plan"]["installments"]] == ["600.50", "600.00"]
    page = portal.client.get(url + "?lang=en").text
    assert 'data-proposal="accepted"' in page and "Your installment plan" in page
    types = [e["type"] for e in portal.as_("auditor").get("/receivables/INV-A-1/history").json()][-3:]
    assert types == ["InstallmentPlanProposed", "InstallmentProposalAccepted", "InstallmentPlanAgreed"]


def test_a_dispute_raised_on_the_portal_shows_and_pauses_escalation(portal):
    url = link(portal)
    assert post(portal, url, "INV-A-1", "raise-dispute", reason="goods arrived damaged").status_code == 303
    receivable = portal.as_("collector").get("/receivables/INV-A-1").json()
    assert receivable["dispute"]["raised_by"] == "customer:C-SH-1"
    page = portal.client.get(url + "?lang=en").text
    assert "goods arrived damaged" in page and "/raise-dispute" not in page


def test_a_form_without_its_csrf_token_records_nothing(portal):
    url = link(portal)
    portal.client.get(url)
    response = portal.client.post(f"{url}/receivables/INV-A-1/raise-dispute", data={"reason": "x"})
    assert response.status_code == 403
    forged = portal.client.post(f"{url}/receivables/INV-A-1/raise-dispute", data={"reason": "x", "csrf": "forged"})
    assert forged.status_code == 403
    assert version_of(portal, "INV-A-1") == 3


def test_another_customers_receivable_is_unreachable_by_any_id_in_any_form_or_url(portal):
    url = link(portal)
    csrf = csrf_of(portal.client.get(url).text)
    other_id = portal.as_("auditor").get("/receivables/INV-B-1").json()["id"]
    forms = {
        "promise-to-pay": {"amount": "100.00", "promised_on": "2026-03-10"},
        "propose-installment-plan": {"installments": "2026-03-20 1200.50"},
        "raise-dispute": {"reason": "not ours"},
    }
    for command, fields in forms.items():
        for ref in ("INV-B-1", other_id, other_id.upper(), "INV-B-1%20", "..%2FINV-B-1"):
            response = post(portal, url, ref, command, csrf, **fields)
            assert response.status_code == 404, (command, ref, response.status_code)
            assert "INV-B-1" not in response.text
        # Ids of the other customer in any field of a form on one's own receivable: ignored.
        extra = {"receivable_id": other_id, "invoice_number": "INV-B-1", "customer_id": "C-BJ-2", "receivable_ref": "INV-B-1"}
        post(portal, url, "INV-A-1", command, csrf, **fields, **extra)
    assert version_of(portal, "INV-B-1") == 2  # issued, fell due: nothing else
    for query in ("?customer_id=C-BJ-2", "?receivable=INV-B-1", f"?id={other_id}"):
        assert "INV-B-1" not in portal.client.get(url + query).text


def test_the_service_refuses_a_customer_acting_on_anothers_receivable(portal):
    rid = resolve_id("INV-B-1")
    with pytest.raises(NotFoundError):
        portal.services.app.execute(CommandRequest(actor=customer_actor("C-SH-1")), rid, "raise_dispute", reason="x")


def test_no_api_key_can_hold_the_customers_role(portal):
    with pytest.raises(KeyFileError):
        portal.services.keys.add("customer:C-SH-1", "customer", START)


def test_each_link_has_its_own_rate(sqlite_url):
    services = make_services(sqlite_url, FixedClock(START), COLLECTIONS_PORTAL_BURST=3, COLLECTIONS_PORTAL_REQUESTS_PER_MINUTE=1)
    try:
        api = Api(services)
        setup(api)
        first, second = link(api), link(api, "C-BJ-2")
        assert [api.client.get(first).status_code for _ in range(4)] == [200, 200, 200, 429]
        assert api.client.get(second).status_code == 200
    finally:
        services.close()


def test_messages_and_letters_carry_the_link_when_the_policy_says_so(sqlite_url, tmp_path):
    from importlib import resources

    import sqlalchemy as sa

    from projections.outbox import messages

    bundled = resources.files("collections_es.policy").joinpath("default.toml").read_text(encoding="utf-8")
    policy = tmp_path / "policy.toml"
    portal_says = bundled.replace('version = "2026.1"', 'version = "2026.1-portal"').replace(
        "links_in_messages = false", "links_in_messages = true"
    )
    assert "links_in_messages = true" in portal_says
    policy.write_text(portal_says, encoding="utf-8")
    services = make_services(sqlite_url, FixedClock(START), COLLECTIONS_POLICY_FILE=str(policy),
                             COLLECTIONS_PUBLIC_URL="https://pay.example.com/")
    try:
        api = Api(services)
        setup(api)
        assert api.as_("collector").post("/receivables/INV-A-1/start-follow-up", json={}).status_code == 200
        letter = api.as_("collector").get("/receivables/INV-A-1/letters/dunning?language=en&format=txt")
        assert letter.status_code == 200
        found = re.search(r"https://pay\.example\.com(/portal/\S+)", letter.text)
        assert found, letter.text
        assert "Invoice INV-A-1" in api.client.get(found.group(1) + "?lang=en").text
        api.as_("auditor").get("/notifications")  # the outbox catches up
        with services.engine.connect() as conn:
            body = conn.execute(sa.select(messages.c.body).where(messages.c.kind == "first_dunning")).scalar_one()
        message_link = re.search(r"https://pay\.example\.com(/portal/\S+)", body).group(1)
        page = api.client.get(message_link)
        assert page.status_code == 200 and "INV-A-1" in page.text and "INV-B-1" not in page.text
    finally:
        services.close()


def test_without_the_policys_word_letters_carry_no_link(portal):
    letter = portal.as_("collector").get("/receivables/INV-A-1/letters/dunning?language=en&format=txt")
    assert letter.status_code == 200 and "/portal/" not in letter.text


def test_a_form_that_is_not_a_form_is_refused_with_a_page(portal):
    url = link(portal)
    response = portal.client.post(f"{url}/receivables/INV-A-1/raise-dispute", content=b"\xff\xfe", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 403 and "text/html" in response.headers["content-type"]
    assert version_of(portal, "INV-A-1") == 3


def test_a_balance_breakdown_is_shown_part_by_part_where_the_receivable_keeps_one(portal, monkeypatch):
    from collections_es.domain.receivable import Receivable

    # Another part of the service adds `balance_breakdown` (charges); the page shows whatever it holds.
    monkeypatch.setattr(Receivable, "balance_breakdown", property(lambda r: {"principal": r.balance, "late_fees": Decimal("0")}), raising=False)
    text = portal.client.get(link(portal) + "?lang=zh-CN").text
    assert "本金" in text and "滞纳金" in text
