"""Imports of customers, receivables and payments from CSV, over HTTP and the CLI (issue 14)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collections_es.application.service import Request
from collections_es.cli import app as cli_app
from collections_es.config import get_settings
from collections_es.domain.customer import customer_uuid
from collections_es.domain.receivable import receivable_id
from collections_es.domain.trail import Actor
from collections_es.imports import columns

from ..conftest import make_services
from .conftest import Api

CSV = {"Content-Type": "text/csv"}
CUSTOMERS = (
    "customer_id,name,timezone,tier,preferred_channel,language,contacts.email,contacts.phone,credit_limit.amount,credit_limit.currency\n"
    "C-SH-1,上海示例贸易有限公司,Asia/Shanghai,A,email,zh-CN,ap@example.cn,13812345678,100000,CNY\n"
    "C-LA-1,Pacific Supply Inc.,America/Los_Angeles,B,phone,en,,,,\n"
)


def receivables_csv(count: int, *, bad_line: int | None = None) -> str:
    """`count` receivables of C-SH-1; the file's line `bad_line` (the header is line 1) has a bad amount."""
    lines = ["invoice_number,customer_id,amount,currency,issued_on,due_on,collector"]
    for n in range(1, count + 1):
        amount = "12.5O" if n + 1 == bad_line else f"{100 + n}.50"
        lines.append(f"INV-{n:05d},C-SH-1,{amount},CNY,2026-02-01,2026-03-31,collector-1")
    return "\n".join(lines) + "\n"


def post(api: Api, kind: str, text: str, who: str = "service", **params: str):
    return api.as_(who).post(f"/imports/{kind}", content=text.encode("utf-8"), headers=CSV, params=params)


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture
def sqlite_api(sqlite_url, clock) -> Iterator[Api]:
    services = make_services(sqlite_url, clock)
    yield Api(services)
    services.close()


@pytest.fixture
def cli(sqlite_url, monkeypatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def head(api: Api) -> int:
    return api.services.app.recorder.max_notification_id() or 0


def test_a_file_with_one_bad_line_among_thousands_imports_nothing_and_names_that_line_and_field_over_http(sqlite_api):
    api = sqlite_api
    ok(post(api, "customers", CUSTOMERS))
    before = head(api)
    refused = post(api, "receivables", receivables_csv(3000, bad_line=1204))
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["type"] == "/problems/import-invalid" and problem["error_count"] == 1
    assert [(e["line"], e["field"]) for e in problem["errors"]] == [(1204, "amount")]
    assert "line 1204, field amount" in problem["detail"]
    assert head(api) == before, "nothing was written"
    assert not api.services.app.exists(receivable_id("INV-00001"))


def test_a_file_with_one_bad_line_among_thousands_imports_nothing_and_names_that_line_and_field_from_the_cli(
    cli, sqlite_url, tmp_path: Path
):
    customers, receivables = tmp_path / "customers.csv", tmp_path / "receivables.csv"
    customers.write_text(CUSTOMERS, encoding="utf-8")
    receivables.write_text(receivables_csv(2500, bad_line=1204), encoding="utf-8")
    assert cli.invoke(cli_app, ["import", "customers", str(customers)]).exit_code == 0
    result = cli.invoke(cli_app, ["import", "receivables", str(receivables)])
    assert result.exit_code == 1, result.output
    assert "line 1204, field amount" in result.output and "nothing imported" in result.output
    services = make_services(sqlite_url)
    try:
        assert not services.app.exists(receivable_id("INV-00001"))
        assert [e.actor_id for e in services.app.events.get(services.app.get_customer("C-SH-1").id)] == [
            "import:customers.csv"
        ], "the trail names the import and its file"
    finally:
        services.close()


def test_importing_the_same_files_twice_changes_nothing(database_url, clock):
    services = make_services(database_url, clock)
    try:
        api = Api(services)
        payments = (
            "invoice_number,amount,method,paid_on,reference\n"
            "INV-00001,50.00,alipay,2026-03-01,P-1\n"
            "INV-00002,10.00,bank_transfer,2026-03-01,P-2\n"
        )
        first = [ok(post(api, k, text)) for k, text in (("customers", CUSTOMERS), ("receivables", receivables_csv(300)), ("payments", payments))]
        assert [(s["created"], s["recorded"], s["unchanged"]) for s in first] == [(2, 0, 0), (300, 0, 0), (0, 2, 0)]
        written = head(api)
        versions = {n: services.app.get_receivable(receivable_id(n)).version for n in ("INV-00001", "INV-00002", "INV-00300")}
        assert versions == {"INV-00001": 2, "INV-00002": 2, "INV-00300": 1}

        again = [ok(post(api, k, text)) for k, text in (("customers", CUSTOMERS), ("receivables", receivables_csv(300)), ("payments", payments))]
        assert [(s["created"], s["recorded"], s["unchanged"], s["error_count"]) for s in again] == [
            (0, 0, 2, 0), (0, 0, 300, 0), (0, 0, 2, 0)
        ]
        assert head(api) == written, "nothing new in the log"
        assert {n: services.app.get_receivable(receivable_id(n)).version for n in versions} == versions
        balance = ok(api.as_("auditor").get("/receivables/INV-00001"))["balance"]
        assert balance == "51.50"
    finally:
        services.close()


def test_a_line_that_exists_with_other_data_is_an_error_and_is_never_overwritten(sqlite_api):
    api = sqlite_api
    ok(post(api, "customers", CUSTOMERS))
    ok(post(api, "receivables", receivables_csv(3)))
    changed = receivables_csv(3).replace("INV-00002,C-SH-1,102.50", "INV-00002,C-SH-1,999.00")
    refused = post(api, "receivables", changed)
    assert refused.status_code == 422
    assert [(e["line"], e["field"]) for e in refused.json()["errors"]] == [(3, "amount")]
    assert "never overwrites" in refused.json()["errors"][0]["message"]
    assert ok(api.as_("auditor").get("/receivables/INV-00002"))["amount"] == "102.50"
    renamed = post(api, "customers", CUSTOMERS.replace("Pacific Supply Inc.", "Pacific Supply LLC"))
    assert [(e["line"], e["field"]) for e in renamed.json()["errors"]] == [(3, "name")]


def test_payments_are_matched_by_invoice_number_or_reference_and_unmatched_lines_are_listed_not_guessed(sqlite_api):
    api = sqlite_api
    ok(post(api, "customers", CUSTOMERS))
    ok(post(api, "receivables", receivables_csv(3)))
    payments = (
        "invoice_number,amount,method,paid_on,reference\n"
        "INV-00001,101.50,wechat_pay,2026-03-01,WX-1\n"  # by invoice number: settles it
        ",20.00,bank_transfer,2026-03-02,INV-00002\n"  # no invoice number: the reference names it
        "INV-09999,5.00,cash,2026-03-01,C-1\n"  # no such invoice: unmatched, even though...
        ",5.00,cash,2026-03-01,INV-0000\n"  # ...a prefix of real ones: never guessed
    )
    before = head(api)
    dry = ok(post(api, "payments", payments, dry_run="true"))
    assert (dry["dry_run"], dry["written"], dry["recorded"], dry["unmatched_count"]) == (True, False, 2, 2)
    assert head(api) == before, "a dry run writes nothing"

    done = ok(post(api, "payments", payments))
    assert (done["recorded"], done["unmatched_count"], done["written"]) == (2, 2, True)
    assert [(u["line"], u["invoice_number"], u["reference"]) for u in done["unmatched"]] == [
        (4, "INV-09999", "C-1"), (5, None, "INV-0000")
    ]
    assert ok(api.as_("auditor").get("/receivables/INV-00001"))["state"] == "settled"
    second = ok(api.as_("auditor").get("/receivables/INV-00002"))
    assert second["balance"] == "82.50"
    history = ok(api.as_("auditor").get("/receivables/INV-00002/history"))
    assert (history[-1]["type"], history[-1]["actor"], history[-1]["role"]) == ("PaymentRecorded", "service-1", "service")


def test_payments_that_together_overpay_a_receivable_import_nothing(sqlite_api):
    api = sqlite_api
    ok(post(api, "customers", CUSTOMERS))
    ok(post(api, "receivables", receivables_csv(1)))
    payments = (
        "invoice_number,amount,method,paid_on,reference\n"
        "INV-00001,100.00,cash,2026-03-01,R-1\n"
        "INV-00001,1.51,card,2026-03-01,R-2\n"
    )
    refused = post(api, "payments", payments)
    assert [(e["line"], e["field"]) for e in refused.json()["errors"]] == [(3, "amount")]
    assert ok(api.as_("auditor").get("/receivables/INV-00001"))["version"] == 1


def test_the_cli_payments_dry_run_writes_nothing_and_says_what_would_happen(cli, sqlite_url, tmp_path: Path):
    for name, text in (("c.csv", CUSTOMERS), ("r.csv", receivables_csv(2))):
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert cli.invoke(cli_app, ["import", "customers", str(tmp_path / "c.csv")]).exit_code == 0
    assert cli.invoke(cli_app, ["import", "receivables", str(tmp_path / "r.csv")]).exit_code == 0
    (tmp_path / "p.csv").write_text(
        "\ufeffinvoice_number,amount,method,paid_on,reference\nINV-00001,1.00,check,2026-03-01,CHK-1\nNOPE,1.00,cash,2026-03-01,X\n",
        encoding="utf-8",
    )
    dry = cli.invoke(cli_app, ["import", "payments", str(tmp_path / "p.csv"), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "recorded 1, unchanged 0, unmatched 1, errors 0 (dry run: nothing written)" in dry.output
    assert "unmatched: line 3: no receivable with invoice number 'NOPE'" in dry.output
    services = make_services(sqlite_url)
    try:
        assert services.app.get_receivable(receivable_id("INV-00001")).version == 1
    finally:
        services.close()
    done = cli.invoke(cli_app, ["import", "payments", str(tmp_path / "p.csv")])
    assert "recorded 1" in done.output and done.exit_code == 0


def test_nested_columns_fill_nested_fields_and_lists_may_be_left_out(sqlite_api):
    api = sqlite_api
    assert "contacts.email" in columns("customers") and "credit_limit.amount" in columns("customers")
    assert "contact_persons" not in columns("customers") and "override" not in columns("payments")
    ok(post(api, "customers", CUSTOMERS))
    customer = ok(api.as_("supervisor").get("/customers/C-SH-1"))
    assert customer["contacts"] == {"email": "ap@example.cn", "phone": "13812345678"}
    assert customer["credit_limit"] == {"amount": "100000.00", "currency": "CNY"}
    assert customer["contact_persons"] == []
    assert ok(api.as_("supervisor").get("/customers/C-LA-1"))["credit_limit"] is None


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("customer_id,name,timezone,fax\nC-1,A,Asia/Shanghai,123\n", 1, "fax"),
        ("customer_id,name\nC-1,A\n", 1, "timezone"),
        ("customer_id,name,timezone,contacts.email\nC-1,A,Asia/Shanghai,not-an-address\n", 2, "contacts.email"),
        ("customer_id,name,timezone\nC-1,A,Mars/Olympus\n", 2, "timezone"),
        ("customer_id,name,timezone\nC-1,A,Asia/Shanghai\nC-1,B,Asia/Shanghai\n", 3, "customer_id"),
        ("customer_id,name,timezone\nC-1,A\n", 2, "line"),
    ],
    ids=["unknown column", "missing column", "nested field", "domain check", "twice in the file", "short line"],
)
def test_an_unknown_column_or_a_bad_cell_is_an_error_naming_the_line_and_column(sqlite_api, text, line, field):
    refused = post(sqlite_api, "customers", text)
    assert refused.status_code == 422, refused.text
    assert (refused.json()["errors"][0]["line"], refused.json()["errors"][0]["field"]) == (line, field)
    assert not sqlite_api.services.app.exists(customer_uuid("C-1"))


def test_no_file_of_any_size_or_shape_gives_a_500(sqlite_url, clock):
    services = make_services(sqlite_url, clock, COLLECTIONS_IMPORT_MAX_BYTES=4096, COLLECTIONS_IMPORT_MAX_LINES=20)
    try:
        api = Api(services)
        too_big = post(api, "customers", CUSTOMERS + "x" * 5000)
        assert too_big.status_code == 413 and too_big.headers["content-type"].startswith("application/problem+json")
        too_long = post(api, "receivables", receivables_csv(25))
        assert too_long.status_code == 422 and too_long.json()["errors"][-1]["field"] == "file"
        for body in (b"", b"\xff\xfe\x00garbage", b'customer_id,name,timezone\n"C-1,unterminated\n', b"\x00" * 100):
            answer = api.as_("service").post("/imports/customers", content=body, headers=CSV)
            assert answer.status_code == 422, (body, answer.text)
        assert post(api, "invoices", "a\n").status_code == 422
        assert api.as_("service").post("/imports/customers", json={"a": 1}).status_code == 415
        assert post(api, "customers", CUSTOMERS, who="collector").status_code == 403
    finally:
        services.close()


def test_a_batch_that_meets_a_concurrent_write_is_written_line_by_line_and_the_race_is_reported(sqlite_api, monkeypatch):
    api = sqlite_api
    ok(post(api, "customers", CUSTOMERS))
    app = api.services.app
    save = app.save_decided

    def racing(decided):  # noqa: ANN001
        # Another writer issues one of the batch's invoices just before the batch is saved.
        app.issue_receivable(
            Request(Actor("erp", "service")), invoice_number="INV-00002", customer_id="C-SH-1", amount="102.50",
            currency="CNY", issued_on=date(2026, 2, 1), due_on=date(2026, 3, 31), collector=None,
        )
        monkeypatch.setattr(app, "save_decided", save)
        return save(decided)

    monkeypatch.setattr(app, "save_decided", racing)
    answer = post(api, "receivables", receivables_csv(3))
    assert answer.status_code == 422, answer.text
    assert [(e["line"], e["field"]) for e in answer.json()["errors"]] == [(3, "invoice_number")]
    assert "the other lines imported" in answer.json()["detail"]
    assert app.exists(receivable_id("INV-00001")) and app.exists(receivable_id("INV-00003"))
    assert app.get_receivable(receivable_id("INV-00002")).collector is None, "the other writer's receivable is kept"
