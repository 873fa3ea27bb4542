"""Masking and redaction of contact details for roles without need (ADR 0030)."""

from __future__ import annotations

from collections_es.application.pii import Redactor, mask, scrub


def test_contact_details_are_masked_keeping_only_a_hint() -> None:
    assert mask("phone", "138 1234 5678") == "138****5678"
    assert mask("email", "zhang.wei@example.com") == "z****@example.com"
    assert mask("name", "王芳") == "王****"
    assert mask("address", "上海市浦东新区世纪大道100号") == "上海市浦东新****"
    assert mask("phone", "12345") == "****"


def test_free_text_loses_the_known_contact_details_of_the_customer_in_any_case() -> None:
    redactor = Redactor()
    redactor.learn_customer(
        {"email": "Li.Na@Example.com", "address": "北京市朝阳区建国路88号"},
        [{"name": "王芳", "role": "财务", "phone": "137 2222 3333"}],
    )
    text = "王芳说：寄到北京市朝阳区建国路88号，抄送 li.na@example.com，电话 137 2222 3333"
    assert redactor.text(text) == "王****说：寄到北京市朝阳区****，抄送 L****@Example.com，电话 137****3333"


def test_free_text_loses_anything_shaped_like_an_email_or_a_phone_number_but_not_dates() -> None:
    redactor = Redactor()
    assert redactor.text("电话13900001111，邮箱 a.b@c.example") == "电话139****1111，邮箱 a****@c.example"
    assert redactor.text("call +1 (650) 555-0199 on 2026-04-30 10:00") == "call +16****0199 on 2026-04-30 10:00"
    kept = "invoice INV-2026-000123456, 1,200.50 CNY, ref 20260430, id 3f2a-123456789012"
    assert redactor.text(kept) == kept


def test_event_data_is_masked_field_by_field_and_in_its_free_text() -> None:
    data = {
        "contacts": {"phone": "13900001111"},
        "contact_persons": [{"name": "Olivia Pemberton", "role": "controller"}],
        "note": "Olivia Pemberton will call back",
        "amount": "100.00",
    }
    assert Redactor().data(data) == {
        "contacts": {"phone": "139****1111"},
        "contact_persons": [{"name": "O****", "role": "controller"}],
        "note": "O**** will call back",
        "amount": "100.00",
    }


def test_an_error_message_is_scrubbed_of_the_recipient_it_quotes() -> None:
    error = "SMTPRecipientsRefused: {'LI.NA@example.com': (550, b'<li.na@example.com>: rejected')}"
    assert "li.na" not in scrub(error, "li.na@example.com").lower()
    assert "13900001111" not in scrub("gateway: number 13900001111 unknown", "139 0000 1111")
