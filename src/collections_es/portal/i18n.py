"""The portal's languages, zh-CN and en: its own catalog (`locale/zh_CN/LC_MESSAGES/*.po`), kept
apart from the console's so each can change without the other; the console's formats (money,
days) and language negotiation."""

from __future__ import annotations

import functools
import hashlib
import io
from importlib import resources

import jinja2
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from fastapi import Response

from ..console.i18n import DEFAULT_LANGUAGE, LANGUAGE_NAMES, LANGUAGES, LOCALES, Formats, N_, language_named, negotiate
from ..domain.errors import NotFoundError

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGE_NAMES", "LANGUAGES", "N_", "language_named", "negotiate"]

CATALOG_FOLDERS = {"zh-CN": "locale/zh_CN/LC_MESSAGES"}


def read_catalog(lang: str) -> Catalog:
    merged = Catalog(locale=LOCALES[lang], charset="utf-8", fuzzy=False)
    folder = resources.files(__package__).joinpath(CATALOG_FOLDERS[lang])
    for file in sorted((f for f in folder.iterdir() if f.name.endswith(".po")), key=lambda f: f.name):
        with file.open("rb") as po:
            for message in read_po(po, locale=LOCALES[lang]):
                if message.id:
                    merged.add(message.id, message.string, flags=message.flags)
    return merged


def _translations(lang: str) -> NullTranslations:
    if lang not in CATALOG_FOLDERS:
        return NullTranslations()
    compiled = io.BytesIO()
    write_mo(compiled, read_catalog(lang))
    compiled.seek(0)
    return Translations(compiled)


TRANSLATIONS: dict[str, NullTranslations] = {lang: _translations(lang) for lang in LANGUAGES}


def gettext(lang: str, message: str) -> str:
    return TRANSLATIONS[lang].gettext(message)


#: What a customer is told when a form is refused by one of these rules (else the rule's own words).
RULE_MESSAGES: dict[str, str] = {
    "promise.exceeds_balance": N_("The amount is more than you owe on this invoice."),
    "promise.date_in_past": N_("The date has passed; choose today or a later day."),
    "portal.promise_too_far": N_("The date is later than we can accept here; choose an earlier day, or call us."),
    "portal.promise_too_small": N_("The amount is less than we can accept here; promise more, or call us."),
    "installments.sum": N_("The installments must add up to exactly what you owe."),
    "installments.order": N_("Each installment must come after the one before it."),
    "installments.date_in_past": N_("An installment's date has passed; choose later days."),
    "installments.empty": N_("A plan needs at least one installment."),
    "portal.plan_too_many": N_("The plan has more installments than we can accept here; call us to agree on another."),
    "portal.plan_too_long": N_("The plan ends later than we can accept here; call us to agree on another."),
    "proposal.pending": N_("Your proposed plan is already waiting for our answer."),
    "dispute.already_open": N_("This invoice is disputed already; we will contact you."),
    "field.required": N_("Please fill in every required field."),
    "money.format": N_("Write the amount as a number, e.g. 1200.50."),
    "money.precision": N_("The amount has too many decimal places."),
    "money.positive": N_("The amount must be more than zero."),
    "money.too_large": N_("The amount is too large."),
    "field.date_range": N_("The date is outside any we can accept."),
}
#: What a customer is told about a form field that is missing or not valid.
FIELD_MESSAGES: dict[str, str] = {
    "amount": N_("Please give the amount as a number, e.g. 1200.50."),
    "promised_on": N_("Please give the date you will pay."),
    "installments": N_("Please write one installment a line: its date and its amount, e.g. 2026-04-30 500.00."),
    "reason": N_("Please say what is wrong with the invoice."),
    "note": N_("The note is too long."),
}
CHECK_THE_FORM = N_("Please check the form.")
#: Names of the parts of a balance (a receivable's `balance_breakdown`, where it keeps one).
BALANCE_PARTS: dict[str, str] = {
    "principal": N_("Principal"),
    "charges": N_("Charges"),
    "fees": N_("Late fees"),
    "late_fees": N_("Late fees"),
    "interest": N_("Interest"),
}


def balance_part(lang: str, name: str) -> str:
    known = BALANCE_PARTS.get(name)
    return gettext(lang, known) if known else name.replace("_", " ")


def rule_message(lang: str, rule_id: str, detail: str) -> str:
    known = RULE_MESSAGES.get(rule_id)
    return gettext(lang, known) if known else detail


def field_message(lang: str, field: str) -> str:
    return gettext(lang, FIELD_MESSAGES.get(field, CHECK_THE_FORM))


def _environment(lang: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(TRANSLATIONS[lang], newstyle=True)  # type: ignore[attr-defined]
    formats = Formats(lang)
    env.filters["money"] = formats.money
    env.filters["day"] = formats.day
    env.filters["instant"] = formats.instant
    env.globals["static"] = static_url
    env.globals["balance_part"] = lambda name: balance_part(lang, name)
    return env


@functools.cache
def environment(lang: str) -> jinja2.Environment:
    return _environment(lang)


STATIC = resources.files(__package__).joinpath("static")
_FILES = {f.name: f for f in STATIC.iterdir() if f.is_file() and not f.name.startswith(".")}
_VERSIONS = {name: hashlib.sha256(f.read_bytes()).hexdigest()[:12] for name, f in _FILES.items()}


def static_url(name: str) -> str:
    return f"/portal/static/{name}?v={_VERSIONS[name]}"


def static_file(name: str) -> Response:
    found = _FILES.get(name)
    if found is None or not name.endswith(".css"):
        raise NotFoundError(f"no static file {name}")
    return Response(found.read_bytes(), media_type="text/css; charset=utf-8", headers={"Cache-Control": "public, max-age=86400"})


def messages() -> list[str]:
    """Messages the code names at run time: each must be in the catalog (a test checks)."""
    return list(dict.fromkeys([*RULE_MESSAGES.values(), *FIELD_MESSAGES.values(), CHECK_THE_FORM, *BALANCE_PARTS.values()]))
