"""The console over HTTP (a browser's requests through FastAPI's TestClient): signing in and
out, sessions and their expiry, CSRF, the security headers, the worklist and the receivable
page. The route × role checks of its pages are in test_access_matrix.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from collections_es.application.clock import FixedClock
from collections_es.console.web import CSP

from ..conftest import START, make_services
from .conftest import CUSTOMER, invoice
from .console import Console, csrf_of, text_of


@pytest.fixture
def console(sqlite_url: str) -> Iterator[Console]:
    services = make_services(sqlite_url, FixedClock(START))
    yield Console(services)
    services.close()


def api_post(console: Console, path: str, body: object, role: str = "supervisor"):
    """A request through the HTTP API with the role's key (to set up a scenario)."""
    client = console.browser(Authorization=f"Bearer {console.tokens[role]}")
    response = client.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response


@pytest.fixture
def receivable(console: Console) -> str:
    """A receivable of a Shanghai customer, past due by nine days (it has fallen due)."""
    api_post(console, "/customers", CUSTOMER)
    api_post(console, "/receivables", invoice())
    console.services.clock.at = START + timedelta(days=39)  # 2026-04-10 09:00 in Shanghai
    api_post(console, "/receivables/INV-2026-0001/fall-due", None)
    return "INV-2026-0001"


def post_form(console: Console, role: str, path: str, data: dict[str, str], *, csrf: str | None = "page"):
    client = console.as_(role)
    fields = dict(data)
    if csrf == "page":
        fields["csrf"] = console.csrf(role)
    elif csrf is not None:
        fields["csrf"] = csrf
    return client.post(path, data=fields)


# ---- signing in ---------------------------------------------------------------------------


def test_a_valid_key_opens_a_session_and_the_console_leads_a_collector_to_the_worklist(console):
    client = console.browser()
    assert client.get("/").headers["location"] == "/console/"
    assert client.get("/console/").headers["location"] == "/console/login"
    response = console.sign_in(client, console.tokens["collector"])
    assert response.status_code == 303 and response.headers["location"] == "/console/"
    assert client.get("/console/").headers["location"] == "/console/worklist"
    page = client.get("/console/worklist")
    assert page.status_code == 200
    assert "Signed in as collector-1 (collector)" in text_of(page.text)


def test_a_role_without_a_worklist_lands_on_a_page_to_find_a_receivable(console):
    page = console.as_("auditor").get("/console/")
    assert page.status_code == 200
    assert 'action="/console/receivables"' in page.text
    assert 'href="/console/worklist"' not in page.text, "only pages the role may see are linked"


def test_a_wrong_key_shows_the_form_again_with_an_error_and_sets_no_session(console):
    client = console.browser()
    response = console.sign_in(client, "ces_not-a-key")
    assert response.status_code == 401
    assert "This key is not valid, or it was revoked." in text_of(response.text)
    assert "ces_session" not in client.cookies
    assert client.get("/console/worklist").status_code == 303


def test_wrong_keys_from_one_address_are_throttled_as_the_api_throttles_them(sqlite_url):
    services = make_services(sqlite_url, FixedClock(START), COLLECTIONS_AUTH_FAILURE_BURST=2)
    try:
        console = Console(services)
        client = console.browser()
        assert [console.sign_in(client, "ces_wrong").status_code for _ in range(3)] == [401, 401, 429]
        refused = console.sign_in(client, console.tokens["collector"])
        assert refused.status_code == 429 and refused.headers["retry-after"]
        assert "Too many wrong keys" in text_of(refused.text)
    finally:
        services.close()


def test_a_sign_in_without_the_forms_own_token_is_refused(console):
    client = console.browser()
    response = client.post("/console/login", data={"token": console.tokens["collector"]})
    assert response.status_code == 403
    assert "ces_session" not in client.cookies


def test_pages_without_a_session_answer_303_to_the_sign_in_page_keeping_where_to_go_back(console):
    response = console.browser().get("/console/receivables/INV-1?version=2")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=%2Fconsole%2Freceivables%2FINV-1%3Fversion%3D2"
    form = console.browser().get(response.headers["location"])
    assert 'name="next" value="/console/receivables/INV-1?version=2"' in form.text


def test_the_session_cookie_is_httponly_samesite_lax_and_not_secure_over_http(console):
    response = console.sign_in(console.browser(), console.tokens["supervisor"])
    cookie = response.headers["set-cookie"]
    assert "ces_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie


def test_the_session_cookie_is_secure_over_https(sqlite_url):
    services = make_services(sqlite_url, FixedClock(START))
    try:
        console = Console(services, base_url="https://testserver")
        cookie = console.sign_in(console.browser(), console.tokens["supervisor"]).headers["set-cookie"]
        assert "Secure" in cookie
    finally:
        services.close()


def test_x_forwarded_proto_makes_the_cookie_secure_only_when_the_proxy_is_trusted(sqlite_url):
    for trusted, expected in ((False, False), (True, True)):
        services = make_services(sqlite_url, FixedClock(START), COLLECTIONS_CONSOLE_TRUST_PROXY=trusted)
        try:
            console = Console(services)
            client = console.browser(**{"X-Forwarded-Proto": "https"})
            nonce = csrf_of(client.get("/console/login").text)
            # a Secure cookie is not sent back over http: the browser behind the proxy would
            client.cookies.clear()
            response = client.post("/console/login", data={"token": console.tokens["supervisor"], "csrf": nonce},
                                   headers={"Cookie": f"ces_login={nonce}"})
            cookie = response.headers["set-cookie"]
            assert ("Secure" in cookie) is expected
        finally:
            services.close()


def test_the_database_keeps_only_a_hash_of_the_session_id(console):
    import sqlalchemy as sa

    client = console.as_("collector")
    secret = client.cookies["ces_session"]
    with console.services.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM console_sessions")).all()
    assert rows and all(secret not in " ".join(map(str, row)) for row in rows)


def test_a_session_ends_after_its_idle_time_without_a_request(console):
    client = console.as_("collector")
    console.wall.advance(minutes=29)
    assert client.get("/console/worklist").status_code == 200
    console.wall.advance(minutes=29)  # 29 minutes after the last request: still alive
    assert client.get("/console/worklist").status_code == 200
    console.wall.advance(minutes=30)
    response = client.get("/console/worklist")
    assert response.status_code == 303 and response.headers["location"].startswith("/console/login")


def test_a_session_ends_at_its_absolute_limit_however_active(console):
    client = console.as_("collector")
    for _ in range(12 * 3 - 1):  # a request every 20 minutes for 11 h 40 min
        console.wall.advance(minutes=20)
        assert client.get("/console/worklist").status_code == 200
    console.wall.advance(minutes=20)
    assert client.get("/console/worklist").status_code == 303


def test_moving_the_service_clock_does_not_end_sessions(console):
    client = console.as_("collector")
    console.services.clock.at = START + timedelta(days=90)
    assert client.get("/console/worklist").status_code == 200


def test_revoking_the_key_ends_its_sessions_at_the_next_request(console):
    client = console.as_("legal")
    assert client.get("/console/worklist").status_code == 200
    keys = console.services.keys
    (key,) = [k for k in keys.list() if k.actor == "legal-1"]
    keys.revoke(key.id, console.services.clock.now())
    assert client.get("/console/worklist").status_code == 303
    assert console.sign_in(console.browser(), console.tokens["legal"]).status_code == 401


def test_signing_out_ends_the_session(console):
    client = console.as_("collector")
    csrf = console.csrf("collector")
    response = client.post("/console/logout", data={"csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/console/login"
    assert client.get("/console/worklist").status_code == 303


def test_signing_out_needs_the_sessions_csrf_token(console):
    client = console.as_("collector")
    assert client.post("/console/logout", data={}).status_code == 403
    assert client.get("/console/worklist").status_code == 200


# ---- CSRF and headers ---------------------------------------------------------------------


def test_a_command_posted_without_or_with_a_wrong_csrf_token_is_403_and_records_nothing(console, receivable):
    head = console.services.projections.head()
    path = f"/console/receivables/{receivable}/record-contact"
    body = {"channel": "phone", "outcome": "reached", "note": "called"}
    for csrf in (None, "wrong", csrf_of(console.browser().get("/console/login").text)):
        response = post_form(console, "collector", path, body, csrf=csrf)
        assert response.status_code == 403, csrf
        assert "nothing was recorded" in text_of(response.text)
        assert response.headers["content-type"].startswith("text/html")
    other = console.csrf("supervisor")  # another session's token is no token of this one
    assert post_form(console, "collector", path, body, csrf=other).status_code == 403
    assert console.services.projections.head() == head


def test_every_console_response_carries_the_security_headers(console, receivable):
    client = console.as_("auditor")
    responses = [
        console.browser().get("/console/login"),
        console.browser().get("/console/worklist"),  # the redirect to sign in
        client.get(f"/console/receivables/{receivable}"),
        client.get("/console/worklist"),  # a 403 page
        client.get("/console/receivables/INV-NOBODY"),  # a 404 page
        client.post(f"/console/receivables/{receivable}/record-contact", data={}),
    ]
    assert [r.status_code for r in responses] == [200, 303, 200, 403, 404, 403]
    for response in responses:
        assert response.headers["content-security-policy"] == CSP
        assert "unsafe-inline" not in CSP and "script-src 'self'" in CSP and "style-src 'self'" in CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


def test_pages_hold_no_inline_script_or_style(console, receivable):
    for role, path in (("collector", "/console/worklist"), ("supervisor", f"/console/receivables/{receivable}")):
        html = console.as_(role).get(path).text
        assert "<script" not in html and "<style" not in html and " style=" not in html and " on" + "click=" not in html
    css = console.browser().get(re.search(r'href="(/console/static/console\.css[^"]*)"', html).group(1))
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


# ---- the worklist -------------------------------------------------------------------------


def test_the_worklist_shows_a_generated_scenarios_items_and_a_supervisor_picks_the_collector(console):
    from .projection_history import COLLECTORS, generate

    generate(console.services.app, 40, seed=11, span_days=60, tail_days=20)
    console.services.clock.at = START + timedelta(days=70)
    api = console.browser(Authorization=f"Bearer {console.tokens['supervisor']}")
    expected = {c: api.get("/worklist", params={"collector": c}).json()["items"] for c in COLLECTORS}
    assert expected["collector-1"], "the scenario gives collector-1 work"
    mine = text_of(console.as_("collector").get("/console/worklist").text)
    for item in expected["collector-1"]:
        assert item["invoice_number"] in mine and item["reasons"][0] in mine
    for item in expected["collector-2"]:
        assert item["invoice_number"] not in mine
    theirs = console.as_("supervisor").get("/console/worklist", params={"collector": "collector-2"})
    assert all(item["invoice_number"] in theirs.text for item in expected["collector-2"])
    # a collector cannot look at another's list by changing the address
    assert expected["collector-2"][0]["invoice_number"] not in console.as_("collector").get(
        "/console/worklist", params={"collector": "collector-2"}
    ).text


def test_a_collector_checks_the_window_then_logs_a_contact_that_shows_on_the_timeline(console, receivable):
    client = console.as_("collector")
    page = client.get("/console/worklist")
    assert receivable in page.text and "9 days past due" in text_of(page.text)
    rid = re.search(r'id="item-([0-9a-f-]{36})"', page.text).group(1)
    checked = client.get("/console/worklist", params={"check": rid, "channel": "phone"})
    assert "A contact by phone now breaks no rule." in text_of(checked.text)
    night = START + timedelta(days=39, hours=14)  # 23:00 in Shanghai
    console.services.clock.at = night
    late = text_of(client.get("/console/worklist", params={"check": rid, "channel": "phone"}).text)
    assert "now would break:" in late and "First allowed at" in late
    console.services.clock.at = START + timedelta(days=39)
    response = post_form(
        console, "collector", f"/console/receivables/{rid}/record-contact",
        {"channel": "phone", "outcome": "promised", "note": "will pay on Friday", "next": "/console/worklist",
         "idempotency_key": "k1"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/console/worklist"
    back = text_of(client.get("/console/worklist").text)
    assert "Recorded: record contact (INV-2026-0001)" in back
    timeline = text_of(client.get(f"/console/receivables/{receivable}").text)
    assert "ContactRecorded collector-1 collector will pay on Friday" in timeline
    assert "will pay on Friday" in timeline.split("Contacts", 1)[1]


def test_a_refusal_shows_its_detail_and_rule(console, receivable):
    response = post_form(
        console, "collector", f"/console/receivables/{receivable}/record-payment",
        {"amount": "99999.00", "method": "bank_transfer", "paid_on": "2026-04-10", "reference": "PAY-1", "next": "/console/worklist"},
    )
    assert response.status_code == 303
    page = text_of(console.as_("collector").get("/console/worklist").text)
    assert "exceeds the balance" in page and "Rule: payment.overpayment" in page
    assert "exceeds the balance" not in text_of(console.as_("collector").get("/console/worklist").text), "shown once"


def test_a_quick_payment_is_recorded_through_the_same_command(console, receivable):
    response = post_form(
        console, "collector", f"/console/receivables/{receivable}/record-payment",
        {"amount": "200.50", "method": "alipay", "paid_on": "2026-04-09", "reference": "PAY-7"},
    )
    assert response.headers["location"] == f"/console/receivables/{receivable}"
    api = console.browser(Authorization=f"Bearer {console.tokens['auditor']}")
    assert api.get(f"/receivables/{receivable}").json()["balance"] == "1000.00"


def test_an_override_from_a_non_supervisor_is_refused_and_nothing_is_recorded(console, receivable):
    head = console.services.projections.head()
    response = post_form(
        console, "collector", f"/console/receivables/{receivable}/record-contact",
        {"channel": "phone", "outcome": "reached", "note": "x", "override_rule_id": "contact.quiet_hours", "override_reason": "r"},
    )
    assert response.status_code == 403
    assert console.services.projections.head() == head


# ---- the receivable page --------------------------------------------------------------------


def test_the_receivable_page_shows_figures_limitation_timeline_and_a_verified_chain(console, receivable):
    page = text_of(console.as_("supervisor").get(f"/console/receivables/{receivable}").text)
    for expected in ("due", "CN¥1,200.50", "Days past due 9", "Limitation lapses on", "Asia/Shanghai",
                     "The hash chain of this receivable verifies", "Issued", "FellDue", "2026.1"):
        assert expected in page, expected
    html = console.as_("supervisor").get(f"/console/receivables/{receivable}").text
    assert html.count("✓") == 2 and 'class="state current"' in html and 'data-state="due" aria-current="true"' in html


def test_one_receivables_chain_check_finds_an_edited_event_and_a_broken_link(console, receivable):
    """What the page's verification column reads: the same functions as the audit's verify."""
    from collections_es.api.present import resolve_id
    from collections_es.application.audit import verify_chain

    events = list(console.services.app.history(resolve_id(receivable)))
    assert [link.ok for link in verify_chain(events)] == [True, True]
    object.__setattr__(events[0], "invoice_number", "INV-FORGED")
    assert [(link.hash_ok, link.link_ok) for link in verify_chain(events)] == [(False, True), (True, True)]
    assert [link.link_ok for link in verify_chain(events[1:])] == [False], "a chain must start at version 1"


def test_version_and_as_of_show_the_receivable_as_it_was(console, receivable):
    client = console.as_("collector")
    first = text_of(client.get(f"/console/receivables/{receivable}", params={"version": 1}).text)
    assert "Receivable INV-2026-0001 issued" in first and "Days past due 0" in first
    assert "This is the receivable as it was: version 1" in first
    before = text_of(client.get(f"/console/receivables/{receivable}", params={"as_of": "2026-03-31"}).text)
    assert "Receivable INV-2026-0001 issued" in before and "version 1" in before
    assert "What you may do now" not in first and "What you may do now" not in before
    now = text_of(client.get(f"/console/receivables/{receivable}").text)
    assert "Receivable INV-2026-0001 due" in now and "What you may do now" in now
    bad = client.get(f"/console/receivables/{receivable}", params={"as_of": "yesterday"})
    assert bad.status_code == 422


def test_an_auditor_sees_no_action_forms_and_no_letters(console, receivable):
    html = console.as_("auditor").get(f"/console/receivables/{receivable}").text
    assert "<form method=\"post\" action=\"/console/receivables" not in html
    assert 'class="command"' not in html and "/letters/" not in html
    assert 'class="command"' in console.as_("collector").get(f"/console/receivables/{receivable}").text


def test_the_override_field_is_offered_to_supervisors_only(console, receivable):
    assert 'name="override_rule_id"' in console.as_("supervisor").get(f"/console/receivables/{receivable}").text
    assert 'name="override_rule_id"' not in console.as_("collector").get(f"/console/receivables/{receivable}").text


def test_a_script_in_a_note_is_shown_as_text(console, receivable):
    note = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    post_form(console, "collector", f"/console/receivables/{receivable}/record-contact",
              {"channel": "email", "outcome": "reached", "note": note})
    html = console.as_("supervisor").get(f"/console/receivables/{receivable}").text
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_letters_are_linked_only_at_their_stage_and_served_through_the_session(console, receivable):
    html = console.as_("collector").get(f"/console/receivables/{receivable}").text
    links = set(re.findall(r'/console/receivables/[0-9a-f-]+/letters/([a-z_]+)\?', html))
    assert links == {"dunning"}, "a receivable past due and not escalated: a dunning letter only"
    href = re.search(r'href="(/console/receivables/[^"]+/letters/dunning\?language=zh-CN&amp;format=html)"', html).group(1)
    letter = console.as_("collector").get(href.replace("&amp;", "&"))
    assert letter.status_code == 200 and letter.headers["content-type"].startswith("text/html") and "催款函" in letter.text
    policy = letter.headers["content-security-policy"]
    assert "style-src 'sha256-" in policy and "unsafe-inline" not in policy and "script-src" not in policy
    assert "default-src 'none'" in policy and "sandbox" in policy and letter.headers["x-frame-options"] == "DENY"
    pdf = console.as_("collector").get(href.replace("&amp;", "&").replace("format=html", "format=pdf"))
    assert pdf.status_code in (200, 503)  # 503 where the CJK font is not installed
    if pdf.status_code == 200:
        assert pdf.content.startswith(b"%PDF") and pdf.headers["content-disposition"].startswith("attachment")
    too_early = console.as_("collector").get(href.replace("&amp;", "&").replace("dunning", "lawyer_letter"))
    assert too_early.status_code == 409 and too_early.headers["content-type"].startswith("text/html")
    assert "a lawyer's letter is for a receivable in state legal" in text_of(too_early.text)


def test_zh_cn_pages_render_chinese_labels_and_the_switch_is_remembered(console, receivable):
    client = console.as_("collector")
    chinese = text_of(client.get(f"/console/receivables/{receivable}", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text)
    assert "余额" in chinese and "时间线" in chinese and "已到期" in chinese and "¥1,200.50" in chinese
    assert "开票" in chinese and "诉讼时效届满日" in chinese and "2029年4月2日" in chinese
    switched = text_of(client.get("/console/worklist?lang=zh-CN").text)
    assert "工作清单" in switched and "逾期 9 天，尚未联系" in switched
    assert "工作清单" in text_of(client.get("/console/worklist").text), "kept in the session, whatever Accept-Language says"
    assert "Worklist" in text_of(client.get("/console/worklist?lang=en").text)


def test_an_unknown_receivable_is_a_404_page(console):
    response = console.as_("collector").get("/console/receivables/INV-NOBODY")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")


def test_the_main_flow_runs_on_each_database(database_url):
    """Sign in, read the worklist, log a contact from it, see it on the timeline; sign out
    (on SQLite and on PostgreSQL)."""
    services = make_services(database_url, FixedClock(START))
    try:
        console = Console(services)
        api_post(console, "/customers", CUSTOMER)
        api_post(console, "/receivables", invoice())
        services.clock.at = START + timedelta(days=39)
        api_post(console, "/receivables/INV-2026-0001/fall-due", None)
        client = console.as_("collector")
        assert "INV-2026-0001" in client.get("/console/worklist").text
        post_form(console, "collector", "/console/receivables/INV-2026-0001/record-contact",
                  {"channel": "phone", "outcome": "reached", "note": "spoke to accounts", "next": "/console/worklist"})
        assert "spoke to accounts" in client.get("/console/receivables/INV-2026-0001").text
        assert client.post("/console/logout", data={"csrf": console.csrf("collector")}).status_code == 303
        assert client.get("/console/worklist").status_code == 303
    finally:
        services.close()


def test_with_a_cipher_key_a_flash_message_is_sealed_in_the_sessions_table(sqlite_url):
    import sqlalchemy as sa

    from collections_es.adapters.cipher import new_key

    services = make_services(sqlite_url, FixedClock(START), COLLECTIONS_CIPHER_KEY=new_key())
    try:
        console = Console(services)
        api_post(console, "/customers", CUSTOMER)
        api_post(console, "/receivables", invoice())
        post_form(console, "collector", "/console/receivables/INV-2026-0001/record-payment",
                  {"amount": "5000.00", "method": "cash", "paid_on": "2026-03-02", "reference": "zhang.wei@example.com"})
        raw = sa.create_engine(sqlite_url)
        with raw.connect() as conn:
            (flash,) = conn.execute(sa.text("SELECT flash FROM console_sessions WHERE flash IS NOT NULL")).one()
        raw.dispose()
        assert "exceeds the balance" not in flash
        assert "exceeds the balance" in console.as_("collector").get("/console/worklist").text
    finally:
        services.close()


def test_the_worklist_comes_fifty_items_a_page_in_the_apis_order(console):
    from .projection_history import generate

    generate(console.services.app, 400, seed=5, span_days=60, tail_days=20)
    console.services.clock.at = START + timedelta(days=70)
    api = console.browser(Authorization=f"Bearer {console.tokens['supervisor']}")
    expected = [item["invoice_number"] for item in api.get("/worklist", params={"limit": 1000}).json()["items"]]
    assert len(expected) > 50
    client = console.as_("supervisor")
    first = client.get("/console/worklist").text
    second = client.get("/console/worklist", params={"page": 2}).text
    shown = re.findall(r'<h2><a href="/console/receivables/[^"]+">([^<]+)</a></h2>', first)
    assert shown == expected[:50]
    assert re.findall(r'<h2><a href="/console/receivables/[^"]+">([^<]+)</a></h2>', second) == expected[50:100]
    assert 'rel="next"' in first and 'href="/console/worklist?page=2"' in first and 'rel="prev"' in second
    # a quick form sends its result back to the page it was on
    assert 'name="next" value="/console/worklist?page=2"' in second


def test_serve_prints_the_console_url_and_how_to_make_a_key(sqlite_url, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from collections_es.cli import app as cli_app
    from collections_es.config import get_settings

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(options))
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["serve", "--port", "8123"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert served["port"] == 8123
    assert "http://127.0.0.1:8123/console/" in result.output
    assert "collections-es keys add --actor NAME --role ROLE" in result.output
