"""Render a recall notice as an e-mail (subject, HTML, text) or as a short text message.

Templates live in ``notifications/templates``; HTML is autoescaped, so whatever QA typed as the
reason or hazard reaches the consignee as text, never as markup.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from domain.enums import Language
from notifications.content import NoticeContent
from notifications.labels import LABELS, SMS_MORE_LOTS, SMS_MORE_PRODUCTS, TITLES, regulators_sentence

TEMPLATES = Path(__file__).with_name("templates")

# One SMS is 70 UCS-2 or 160 GSM-7 characters; Twilio joins up to 10 segments. A recall text is kept
# to about four Chinese segments so it arrives as one message on every handset.
SMS_MAX_CHARS = 300


@lru_cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the code; no stat() per notice
    )


def notice_title(content: NoticeContent, language: Language) -> str:
    """The notice's title for its jurisdiction and language (DOMAIN.md: FSN in the EU, recall otherwise)."""
    return TITLES[(content.jurisdiction, Language(language))]


def _view(content: NoticeContent, language: Language) -> dict[str, Any]:
    """What the e-mail templates show, with every sentence already in the notice's language."""
    t = LABELS[language]
    levels = []
    if content.nmpa_level is not None:
        name = t["level_names"].split(",")[content.nmpa_level - 1]
        levels.append(t["nmpa_level"].format(level=name))
    if content.fda_class is not None:
        levels.append(t["fda_class"].format(cls=content.fda_class))
    shipped = None
    if content.shipped_from or content.shipped_to:
        start = (content.shipped_from or content.shipped_to).isoformat()  # type: ignore[union-attr]
        end = (content.shipped_to or content.shipped_from).isoformat()  # type: ignore[union-attr]
        shipped = start if start == end else t["shipped_range"].format(start=start, end=end)
    return {
        "n": content,
        "t": t,
        "lang": Language(language).value,
        "title": notice_title(content, language),
        "levels": levels,
        "shipped": shipped,
        "depth": t[f"depth.{content.depth.value}"],
        "actions": [t[f"action.{a.value}"] for a in content.required_actions],
        "regulators": regulators_sentence(content.regulators_informed, language),
        "reply_by": t["reply_by"].format(date=content.reply_by.isoformat()),
        "reply_sms": t["reply_sms"].format(code=content.sms_reply_code),
    }


def render_email(content: NoticeContent, language: Language) -> tuple[str, str, str]:
    """The notice as an e-mail in ``language``: (subject, HTML body, plain-text body)."""
    language = Language(language)
    view = _view(content, language)
    env = _environment()
    subject = f"{view['title']} | {content.reference} | {content.products[0].name}"
    html = env.get_template("recall_notice.html").render(view)
    text = env.get_template("recall_notice.txt").render(view)
    return subject, html, text


def render_sms(content: NoticeContent, language: Language) -> str:
    """The notice as one short text: reference, product, lots, the link and the reply code.

    Lots (then products) beyond what fits in :data:`SMS_MAX_CHARS` are summarised as "+N more".
    """
    language = Language(language)
    template = _environment().get_template(f"recall_notice_sms.{language.value}.txt")
    names = [p.name for p in content.products]
    lots = [lot.lot_number for p in content.products for lot in p.lots]
    sep = LABELS[language]["list_sep"]
    text = ""
    for shown_products in range(len(names), 0, -1):
        product = sep.join(names[:shown_products])
        if shown_products < len(names):
            product += SMS_MORE_PRODUCTS[language].format(n=len(names) - shown_products)
        # More than a dozen lot numbers never fit beside the link, so the search starts there.
        for shown_lots in range(min(len(lots), 12), 0, -1):
            lot_text = sep.join(lots[:shown_lots])
            if shown_lots < len(lots):
                lot_text += SMS_MORE_LOTS[language].format(n=len(lots) - shown_lots)
            text = template.render(n=content, product=product, lots=lot_text).strip()
            if len(text) <= SMS_MAX_CHARS:
                return text
    return text  # the shortest form; only an extreme link or reference makes it longer than the target
