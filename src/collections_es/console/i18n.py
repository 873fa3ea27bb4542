"""The console's languages: zh-CN and en (ADR 0040).

English is the source language (the message ids); the Chinese catalog is the
gettext `.po` files in `locale/zh_CN/LC_MESSAGES/` (`console.po`, and one per page
added later if its author likes), read with Babel when the module loads and
compiled in memory, so there is no build step. Dates, times and money are
formatted by Babel in the reader's locale; instants in the zone they belong to
(the customer's, for a receivable).
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

LANGUAGES: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
LOCALES = {"zh-CN": Locale.parse("zh_CN"), "en": Locale.parse("en")}
LANGUAGE_NAMES = {"zh-CN": "中文", "en": "English"}
#: The folder of each translated language's catalogs: every `.po` file in it is read (one per
#: page or group of pages, so that pages added side by side do not edit one file).
CATALOG_FOLDERS = {"zh-CN": "locale/zh_CN/LC_MESSAGES"}


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    return message


def read_catalog(lang: str) -> Catalog:
    """The language's Babel catalog: the messages of every .po file in its folder (a message
    in two files is an error: a test would not know which translation is shown)."""
    merged = Catalog(locale=LOCALES[lang], charset="utf-8", fuzzy=False)
    folder = resources.files(__package__).joinpath(CATALOG_FOLDERS[lang])
    for file in sorted((f for f in folder.iterdir() if f.name.endswith(".po")), key=lambda f: f.name):
        with file.open("rb") as po:
            for message in read_po(po, locale=LOCALES[lang]):
                if not message.id:
                    continue
                if message.id in merged:
                    raise ValueError(f"{file.name}: '{message.id}' is translated in another catalog too")
                merged.add(message.id, message.string, flags=message.flags)
    return merged


class English(NullTranslations):
    """The source language: messages as written, and the code's names (`following_up`,
    `record_contact`) as words (`following up`, `record contact`)."""

    def gettext(self, message: str) -> str:
        return message.replace("_", " ") if _IDENTIFIER.fullmatch(message) else message

    ugettext = gettext  # what Jinja2's i18n extension calls, when there is one


_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


def _translations(lang: str) -> NullTranslations:
    if lang not in CATALOG_FOLDERS:
        return English()
    compiled = io.BytesIO()
    write_mo(compiled, read_catalog(lang))
    compiled.seek(0)
    return Translations(compiled)


TRANSLATIONS: dict[str, NullTranslations] = {lang: _translations(lang) for lang in LANGUAGES}


def gettext(lang: str, message: str) -> str:
    return TRANSLATIONS[lang].gettext(message)


def language_named(value: str | None) -> str | None:
    """`zh-CN`, `zh`, `zh_cn`, `en-GB`… as one of LANGUAGES, or None."""
    if not value:
        return None
    primary = value.strip().replace("_", "-").split("-")[0].lower()
    return {"zh": "zh-CN", "en": "en"}.get(primary)


def negotiate(accept_language: str | None) -> str | None:
    """The first of LANGUAGES the Accept-Language header prefers (by its q values), or None."""
    choices = []
    for i, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if (lang := language_named(tag)) is not None and q > 0:
            choices.append((-q, i, lang))
    return min(choices)[2] if choices else None


class Formats:
    """Numbers, money, days and instants for one reader's language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.locale = LOCALES[lang]

    def money(self, amount: Any, currency: str) -> str:
        if amount is None:
            return ""
        return format_currency(Decimal(str(amount)), currency, locale=self.locale)

    def number(self, value: Any) -> str:
        return format_decimal(value, locale=self.locale)

    def day(self, value: date | None) -> str:
        return "" if value is None else format_date(value, format="medium", locale=self.locale)

    def instant(self, value: datetime | None, zone: str | None = None) -> str:
        """An instant in `zone` (default UTC), with the zone's name so no one guesses."""
        if value is None:
            return ""
        tz = ZoneInfo(zone or "UTC")
        text = format_datetime(value, format="medium", tzinfo=tz, locale=self.locale)
        return f"{text} ({zone or 'UTC'})"


def dynamic_messages() -> list[str]:
    """Messages the code names at run time rather than in a literal: states, commands, roles,
    choices of the command forms, their inputs' labels, letter kinds. The catalog must hold
    each (a test checks, as it checks the literals of templates and code)."""
    from ..application.access import ROLES
    from ..application.commands import LIFECYCLE
    from ..domain import lifecycle
    from ..letters import KINDS
    from . import forms

    import typing

    from ..api.schemas import LimitationInterruptionOut

    interruptions = typing.get_args(LimitationInterruptionOut.model_fields["kind"].annotation)
    from ..domain.compliance import RULES

    from ..domain.trail import CUSTOMER_ROLE

    found = ["Receivable lifecycle", *lifecycle.STATES, *LIFECYCLE, *ROLES, *KINDS, *event_types(), *interruptions]
    found.append(CUSTOMER_ROLE)  # a timeline names the customer's own actions (portal) by this role
    found += [*(rule.title for rule in RULES.values()), *(rule.kind for rule in RULES.values())]
    for command in LIFECYCLE.values():
        for spec in forms.inputs(command):
            found += [spec.label, *spec.options]
    from ..domain.aftercare import COMPLAINT_OUTCOMES, SEVERITIES, UNCLASSIFIED
    from ..domain.policy import DEFAULT_NON_PAYMENT_REASONS

    # The reasons for non-payment of the bundled vocabulary (a policy's own codes show as they are).
    found += [*(r.code for r in DEFAULT_NON_PAYMENT_REASONS), UNCLASSIFIED, *SEVERITIES, *COMPLAINT_OUTCOMES]
    return list(dict.fromkeys(found))


def event_types() -> list[str]:
    """The names of a receivable's events, as its timeline shows them."""
    from ..domain.receivable import Receivable

    return [name for name, value in vars(Receivable).items()
            if isinstance(value, type) and issubclass(value, Receivable.Event) and value is not Receivable.Event]
