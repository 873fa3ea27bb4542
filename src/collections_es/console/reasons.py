"""The worklist's reasons in the reader's language.

The worklist read model words each reason in English (`projections/worklist.py`,
which the API returns as is). The console recognises each of its shapes and
shows the catalog's translation with the same figures; English readers see the
text as it came, and a reason of a shape not listed here is shown as it came.
"""

from __future__ import annotations

import re

from . import i18n
from .i18n import N_

_DAYS = r"(?P<{0}>\d+) days?"

#: Each shape of a reason, and its message (figures by name).
SHAPES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^promise of (?P<on>\d{{4}}-\d{{2}}-\d{{2}}) not kept \({_DAYS.format('late')} late\)$"),
     N_("promise of %(on)s not kept (%(late)s days late)")),
    (re.compile(r"^promise due today$"), N_("promise due today")),
    (re.compile(r"^promise due tomorrow$"), N_("promise due tomorrow")),
    (re.compile(r"^broken promise$"), N_("broken promise")),
    (re.compile(r"^(?P<count>\d+) broken promises$"), N_("%(count)s broken promises")),
    (re.compile(r"^legal referral suggested$"), N_("legal referral suggested")),
    (re.compile(rf"^{_DAYS.format('past')} past due, no contact yet$"), N_("%(past)s days past due, no contact yet")),
    (re.compile(rf"^{_DAYS.format('past')} past due, no contact in {_DAYS.format('silent')}$"),
     N_("%(past)s days past due, no contact in %(silent)s days")),
    (re.compile(rf"^{_DAYS.format('past')} past due$"), N_("%(past)s days past due")),
    (re.compile(r"^falls due today$"), N_("falls due today")),
    (re.compile(r"^disputed: waiting on its resolution$"), N_("disputed: waiting on its resolution")),
]


def reason(text: str, lang: str) -> str:
    """`text` in `lang` (as it came for English, or when its shape is not known)."""
    if lang == "en":
        return text
    for pattern, message in SHAPES:
        found = pattern.match(text)
        if found:
            return i18n.gettext(lang, message) % found.groupdict()
    return text
