"""Letters and message texts from Jinja2 templates kept as files.

Templates are looked up first in a configured directory (a company replaces any
file by putting one of the same name there), then in the bundled
`templates/` folder. Names: `{kind}.{lang}.{txt|html}.j2` for letters,
`{email|sms}_{message}.{lang}.txt.j2` for notifications (first line: subject).
Amounts and dates are formatted per locale with Babel; PDF is drawn with fpdf2
in a CJK TrueType font (Debian's fonts-wqy-zenhei by default).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency
from markupsafe import Markup, escape

from ..domain import lifecycle

KINDS: tuple[str, ...] = ("reminder", "dunning", "final_notice", "lawyer_letter")
#: Earlier names still accepted for a kind (ADR 0037).
KIND_ALIASES: dict[str, str] = {"lawyer": "lawyer_letter"}
#: Template files named otherwise than their kind (a company's replacements keep working).
TEMPLATE_NAMES: dict[str, str] = {"lawyer_letter": "lawyer"}
LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
FORMATS: tuple[str, ...] = ("txt", "html", "pdf")
MESSAGE_KINDS: tuple[str, ...] = ("pre_due_reminder", "first_dunning", "broken_promise", "installment_reminder")
# Parsed once: Babel parses a locale given by name on every call, the bulk of rendering's cost.
LOCALES = {"zh-CN": Locale.parse("zh_CN"), "en": Locale.parse("en")}
DEFAULT_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")


class LetterError(Exception):
    """A letter cannot be produced (e.g. the PDF font is not installed)."""


@dataclass(frozen=True)
class Stage:
    """Where a receivable must be for a letter to say only what is true (ADR 0037):
    in one of `states`, and past due (`past_due` True), not yet (False), or either (None)."""

    letter: str
    states: tuple[str, ...]
    past_due: bool | None

    def admits(self, state: str, days_past_due: int) -> bool:
        return state in self.states and (self.past_due is None or self.past_due == (days_past_due >= 1))

    def describe(self) -> str:
        where = f"in state {self.states[0]}" if len(self.states) == 1 else f"in one of the states {', '.join(self.states)}"
        when = {True: "past due (1 day or more) ", False: "not yet past due ", None: ""}[self.past_due]
        return f"a {self.letter} is for a receivable {when}{where}"


_OPEN = tuple(s for s in lifecycle.STATES if s not in lifecycle.CLOSED_STATES)
#: A reminder asks to pay by the due date; a dunning letter says how many days overdue; a final
#: notice follows an escalation; a lawyer's letter is written once the matter is with legal.
STAGES: dict[str, Stage] = {
    "reminder": Stage("reminder", ("issued", "reminded", "due"), past_due=False),
    "dunning": Stage("dunning letter", _OPEN, past_due=True),
    "final_notice": Stage("final notice", ("overdue_escalated", "legal"), past_due=None),
    "lawyer_letter": Stage("lawyer's letter", ("legal",), past_due=None),
}
assert set(STAGES) == set(KINDS)


def kind_named(name: str) -> str | None:
    """The letter kind a name means (its own name or an earlier one), or None."""
    kind = KIND_ALIASES.get(name, name)
    return kind if kind in KINDS else None


def load_company(path: Path | None) -> dict[str, Any]:
    """The company's details: the configured TOML file, or the bundled example."""
    if path is None:
        text = resources.files(__package__).joinpath("company.toml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    company = tomllib.loads(text)
    for key in ("name", "phone", "payment_methods", "bank_accounts", "legal_basis"):
        if key not in company:
            raise ValueError(f"company file {path or 'company.toml'}: '{key}' is missing")
    missing = [lang for lang in LANGUAGES if lang not in company["legal_basis"]]
    if missing:
        raise ValueError(f"company file {path or 'company.toml'}: legal_basis lacks {', '.join(missing)}")
    return company


def format_amount(amount: Decimal, currency: str, lang: str) -> str:
    return format_currency(Decimal(amount), currency, locale=LOCALES[lang])


def format_day(day: date, lang: str) -> str:
    return format_date(day, format="long", locale=LOCALES[lang])


def _nl2br(value: Any) -> Markup:
    return Markup("<br>\n").join(escape(line) for line in str(value).splitlines())


@dataclass
class Rendered:
    content: bytes
    media_type: str


class Letters:
    """Renders letters and messages for one company."""

    def __init__(self, company: dict[str, Any], *, templates_dir: Path | None = None, font: Path | None = None) -> None:
        self.company = company
        self.font = font or DEFAULT_FONT
        loaders: list[jinja2.BaseLoader] = []
        if templates_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
        loaders.append(jinja2.PackageLoader(__package__, "templates"))
        self.envs = {lang: self._env(jinja2.ChoiceLoader(loaders), lang) for lang in LANGUAGES}

    def _env(self, loader: jinja2.BaseLoader, lang: str) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=loader,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        env.filters["money"] = lambda amount, currency: format_amount(amount, currency, lang)
        env.filters["date"] = lambda day: format_day(day, lang)
        env.filters["nl2br"] = _nl2br
        return env

    def _context(self, lang: str, figures: dict[str, Any]) -> dict[str, Any]:
        return {**figures, "lang": lang, "company": self.company, "legal_basis": self.company["legal_basis"][lang]}

    def text(self, kind: str, lang: str, figures: dict[str, Any]) -> str:
        template = TEMPLATE_NAMES.get(kind, kind)
        return self.envs[lang].get_template(f"{template}.{lang}.txt.j2").render(self._context(lang, figures))

    def html(self, kind: str, lang: str, figures: dict[str, Any]) -> str:
        context = self._context(lang, figures) | {"body_text": self.text(kind, lang, figures)}
        template = TEMPLATE_NAMES.get(kind, kind)
        return self.envs[lang].get_template(f"{template}.{lang}.html.j2").render(context)

    def pdf(self, kind: str, lang: str, figures: dict[str, Any]) -> bytes:
        from fpdf import FPDF

        if not self.font.is_file():
            raise LetterError(
                f"the PDF font {self.font} is not installed (Debian: apt-get install fonts-wqy-zenhei, "
                "or set COLLECTIONS_PDF_FONT)"
            )
        lines = self.text(kind, lang, figures).strip().splitlines()
        pdf = FPDF(format="A4")
        pdf.set_creation_date(datetime.combine(figures["letter_date"], datetime.min.time()))
        pdf.set_title(f"{lines[0]} {figures['invoice_number']}")
        pdf.add_page()
        pdf.add_font("letter", fname=str(self.font), collection_font_number=0)
        pdf.set_font("letter", size=16)
        pdf.cell(0, 12, lines[0], align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("letter", size=11)
        for line in lines[1:]:
            pdf.multi_cell(0, 7, line or " ", new_x="LMARGIN", new_y="NEXT")
        return bytes(pdf.output())

    def letter(self, kind: str, lang: str, fmt: str, figures: dict[str, Any]) -> Rendered:
        if fmt == "txt":
            return Rendered(self.text(kind, lang, figures).encode("utf-8"), "text/plain; charset=utf-8")
        if fmt == "html":
            return Rendered(self.html(kind, lang, figures).encode("utf-8"), "text/html; charset=utf-8")
        return Rendered(self.pdf(kind, lang, figures), "application/pdf")

    def message(self, channel: str, kind: str, lang: str, figures: dict[str, Any]) -> tuple[str, str]:
        """A notification's (subject, body); for SMS the subject is the body's first line."""
        text = self.envs[lang].get_template(f"{channel}_{kind}.{lang}.txt.j2").render(self._context(lang, figures))
        if channel == "sms":
            body = " ".join(text.split())
            return body[:60], body
        subject, _, body = text.strip().partition("\n")
        return subject.strip(), body.strip() + "\n"
