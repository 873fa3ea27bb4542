"""The console's parts that need no app: the catalogs, language negotiation, the forms
generated from the command declaration and the lifecycle diagram."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from babel.messages.extract import extract_from_dir

from collections_es.application.commands import LIFECYCLE
from collections_es.console import diagram, forms, i18n
from collections_es.domain import lifecycle


def used_messages() -> list[str]:
    """Every message the console's templates and code mark for translation, and those it names at run time."""
    folder = str(resources.files("collections_es.console"))
    found = []
    for _, _, message, _, _ in extract_from_dir(
        folder,
        method_map=[("templates/**.j2", "jinja2"), ("*.py", "python")],
        options_map={"templates/**.j2": {"extensions": "jinja2.ext.i18n"}},
        keywords={"_": None, "N_": None},
    ):
        found.append(message[0] if isinstance(message, tuple) else message)
    return list(dict.fromkeys(found + i18n.dynamic_messages()))


def test_every_message_of_the_console_has_a_chinese_translation():
    catalog = i18n.read_catalog("zh-CN")
    messages = used_messages()
    assert len(messages) > 150
    missing = [m for m in messages if not (catalog.get(m) and catalog.get(m).string)]
    assert missing == []
    assert i18n.gettext("zh-CN", "Worklist") == "工作清单"


def test_the_catalog_holds_no_message_the_console_no_longer_uses():
    used = set(used_messages())
    stale = [m.id for m in i18n.read_catalog("zh-CN") if m.id and m.id not in used]
    assert stale == []


def test_english_shows_the_codes_names_as_words():
    assert i18n.gettext("en", "following_up") == "following up"
    assert i18n.gettext("en", "Sign in") == "Sign in"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("en-GB,en;q=0.9", "en"),
        ("fr-FR, en;q=0.5, zh;q=0.7", "zh-CN"),
        ("zh-TW", "zh-CN"),
        ("fr", None),
        ("", None),
        ("en;q=0", None),
        ("en;q=banana, zh", "zh-CN"),
    ],
)
def test_accept_language_picks_the_first_language_the_console_has(header, expected):
    assert i18n.negotiate(header) == expected


def test_money_and_days_are_formatted_in_the_readers_locale():
    from datetime import UTC, date, datetime

    assert i18n.Formats("en").money("1200.5", "CNY") == "CN¥1,200.50"
    assert i18n.Formats("zh-CN").money("1200.5", "CNY") == "¥1,200.50"
    assert i18n.Formats("zh-CN").day(date(2026, 4, 1)) == "2026年4月1日"
    at = datetime(2026, 4, 1, 16, 30, tzinfo=UTC)
    assert i18n.Formats("en").instant(at, "Asia/Shanghai") == "Apr 2, 2026, 12:30:00\u202fAM (Asia/Shanghai)"  # CLDR: a narrow no-break space


def test_a_forms_inputs_come_from_the_command_body():
    specs = {s.name: s for s in forms.inputs(LIFECYCLE["record_contact"])}
    assert specs["channel"].kind == "select" and "phone" in specs["channel"].options and specs["channel"].required
    assert specs["note"].kind == "textarea" and specs["note"].required
    assert specs["promised_on"].kind == "date" and not specs["promised_on"].required
    assert specs["occurred_at"].kind == "datetime" and not specs["occurred_at"].required
    assert "override" not in specs
    payment = {s.name: s for s in forms.inputs(LIFECYCLE["record_payment"])}
    assert payment["amount"].kind == "money" and payment["reference"].kind == "text"
    plan = {s.name: s for s in forms.inputs(LIFECYCLE["agree_installment_plan"])}
    assert plan["installments"].kind == "lines" and plan["installments"].columns == ("due_on", "amount")
    assert forms.inputs(LIFECYCLE["fall_due"]) == []


def test_a_posted_form_becomes_the_body_the_api_would_take():
    command = LIFECYCLE["record_contact"]
    data = forms.body_data(
        command,
        {"channel": "phone", "outcome": "reached", "note": " line one\nline two", "next_step": "",
         "occurred_at": "2026-04-10T09:30", "csrf": "x"},
        "Asia/Shanghai",
    )
    assert data == {"channel": "phone", "outcome": "reached", "note": " line one\nline two",
                    "occurred_at": "2026-04-10T09:30:00+08:00"}
    body = command.body.model_validate(data)
    assert body.occurred_at.utcoffset().total_seconds() == 8 * 3600
    plan = forms.body_data(LIFECYCLE["agree_installment_plan"],
                           {"installments": "2026-05-01 600.25\n\n2026-06-01 600.25", "reason": "cash flow"}, "UTC")
    assert plan["installments"] == [{"due_on": "2026-05-01", "amount": "600.25"}, {"due_on": "2026-06-01", "amount": "600.25"}]
    with pytest.raises(forms.FormError, match="line 1 needs 2 values"):
        forms.body_data(LIFECYCLE["agree_installment_plan"], {"installments": "2026-05-01"}, "UTC")
    override = forms.body_data(LIFECYCLE["escalate"], {"reason": "r", "override_rule_id": "x.y", "override_reason": "why"}, "UTC")
    assert override["override"] == {"rule_id": "x.y", "reason": "why"}


def test_the_diagram_draws_every_state_and_every_transition_between_two_states():
    svg = str(diagram.render("promised"))
    assert svg.count("<g class=\"state") == len(lifecycle.STATES)
    pairs = {(t.source, t.target) for t in lifecycle.transitions() if t.source != t.target}
    assert svg.count("<line ") == len(pairs)
    assert 'data-state="promised" aria-current="true"' in svg and svg.count("aria-current") == 1
    assert "style=" not in svg and "<script" not in svg
    assert svg.count('class="edge from-current"') == len({target for source, target in pairs if source == "promised"})


def test_a_state_the_layout_does_not_know_still_gets_a_place(monkeypatch):
    monkeypatch.setattr(diagram, "PLACES", {s: p for s, p in diagram.PLACES.items() if s != "legal"})
    places = diagram._places()
    assert set(places) == set(lifecycle.STATES)
    assert len(set(places.values())) == len(places), "no two states on one spot"


def test_labels_in_the_diagram_are_escaped():
    svg = str(diagram.render(None, label=lambda name: f"<b>{name}</b>"))
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert not re.search(r"aria-current", svg)


def _segment_meets_box(x1: float, y1: float, x2: float, y2: float, box: tuple[float, float]) -> bool:
    """Whether the segment passes within a few pixels of a state's box (Liang–Barsky clipping)."""
    pad = 4
    left, top = box
    low, high = 0.0, 1.0
    dx, dy = x2 - x1, y2 - y1
    for p, q in ((-dx, x1 - (left - pad)), (dx, left + diagram.WIDTH + pad - x1),
                 (-dy, y1 - (top - pad)), (dy, top + diagram.HEIGHT + pad - y1)):
        if p == 0:
            if q < 0:
                return False
        elif p < 0:
            low = max(low, q / p)
        else:
            high = min(high, q / p)
        if low > high:
            return False
    return True


def test_no_arrow_of_the_diagram_crosses_a_state_it_does_not_join():
    boxes = {state: diagram._box(place) for state, place in diagram._places().items()}
    crossing = []
    for t in lifecycle.transitions():
        if t.source == t.target:
            continue
        x1, y1, x2, y2 = diagram._edge_points(boxes[t.source], boxes[t.target])
        crossing += [(t.source, t.target, state) for state, box in boxes.items()
                     if state not in (t.source, t.target) and _segment_meets_box(x1, y1, x2, y2, box)]
    assert crossing == []


def _reasons(**changes: object) -> list[str]:
    """The reasons the worklist read model gives for one row (its own scoring function)."""
    import json
    from datetime import UTC, date, datetime

    from collections_es.adapters.policy_file import load_policy
    from projections.worklist import priority

    row = {"timezone": "Asia/Shanghai", "due_on": date(2026, 4, 1), "state": "following_up", "currency": "CNY",
           "balance": 100_000, "paid": 0, "commitment": None, "commitment_paid_before": 0, "broken_promises": 0,
           "last_contact_at": None, "disputed": False}
    row |= changes
    if isinstance(row["commitment"], list):
        row["commitment"] = json.dumps(row["commitment"])
    scored = priority(row, "A", datetime(2026, 4, 20, 2, tzinfo=UTC), load_policy(None))
    return scored.reasons if scored else []


def test_every_reason_the_worklist_gives_is_shown_in_chinese():
    from datetime import date, datetime

    from collections_es.console.reasons import reason

    given = [
        *_reasons(),
        *_reasons(last_contact_at=datetime(2026, 4, 2, 2), broken_promises=2),
        *_reasons(last_contact_at=datetime(2026, 4, 18, 2), broken_promises=1, disputed=True),
        *_reasons(commitment=[["2026-04-15", 50_000]]),
        *_reasons(commitment=[["2026-04-20", 50_000]]),
        *_reasons(commitment=[["2026-04-21", 50_000]]),
        *_reasons(due_on=date(2026, 4, 20), state="due"),
        *_reasons(due_on=date(2026, 4, 19)),
        *_reasons(due_on=date(2025, 6, 1), state="overdue_escalated"),
    ]
    from collections_es.console.reasons import SHAPES

    unmatched = [message for pattern, message in SHAPES if not any(pattern.match(text) for text in given)]
    assert unmatched == [], "a shape the scenarios above never produce"
    for text in given:
        shown = reason(text, "zh-CN")
        assert shown != text and not re.search(r"[a-z]{3}", shown), (text, shown)
        assert reason(text, "en") == text
    assert reason("9 days past due, no contact yet", "zh-CN") == "逾期 9 天，尚未联系"
    assert reason("a reason of a new shape", "zh-CN") == "a reason of a new shape"


def test_a_letters_policy_allows_its_own_style_sheet_by_hash_and_nothing_else():
    import base64
    import hashlib

    from collections_es.console.routes import letter_policy

    css = b"\n  body { margin: 2em; }\n"
    policy = letter_policy(b"<html><head><style>" + css + b"</style></head><body>x</body></html>")
    digest = base64.b64encode(hashlib.sha256(css).digest()).decode()
    assert f"style-src 'sha256-{digest}';" in policy
    assert "default-src 'none'" in policy and "sandbox" in policy and "unsafe" not in policy
    assert "style-src 'none';" in letter_policy(b"<p>no style</p>")
