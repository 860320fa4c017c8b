"""Notices rendered from the templates carry every field DOMAIN.md requires, in zh-CN and en."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from domain.enums import Language
from notifications.content import SmsSpec
from notifications.labels import LABELS
from notifications.render import SMS_MAX_CHARS, render_email, render_sms
from tests.notifications.samples import notice

TITLES = {Language.zh_CN: "紧急：医疗器械召回通知", Language.en: "URGENT: MEDICAL DEVICE RECALL"}


def _required_texts(language: Language) -> list[str]:
    """What a reader must find in the notice (DOMAIN.md, "The notice and the acknowledgement")."""
    t = LABELS[language]
    return [
        TITLES[language],
        "2026-11-21",  # date
        "RC-2026-0007",  # reference
        "华东医疗器械有限公司",  # addressee
        "苏州医械有限公司",  # manufacturer
        "一次性使用输液器",  # product
        "IV-200",  # model
        "CAT-IV200",  # catalogue number
        "06901234567892",  # UDI-DI
        "L2401",
        "L2402",  # lots
        "SN-0001",
        "SN-0002",  # serials
        "2028-01-31",
        "2028-02-29",  # expiry
        "500",  # quantity shipped
        "2026-03-01",
        "2026-09-30",  # ship-date range
        "Flow regulator may crack under pressure",  # reason
        "Uncontrolled infusion rate, risk of overdose",  # hazard
        t["nmpa_level"].format(level=t["level_names"].split(",")[1]),  # NMPA level 2
        t["fda_class"].format(cls="II"),
        t["depth.user"],
        t["forward"],  # forward to sub-accounts
        t["action.stop_use"],
        t["action.quarantine"],
        t["action.return"],
        "Ship returns to Warehouse 3, Suzhou",
        "江苏省药品监督管理局",  # the regulator has been informed
        t["regulators_informed"].split("{")[0].strip(),
        "Zhang Wei",
        "+86 512 6000 0000",
        "recall@maker.example",  # contact
        "2026-11-24",  # reply deadline
        "http://127.0.0.1:8000/ack/eyJhbGciOiJIUzI1NiJ9.payload.signature",  # acknowledgement link
        "K7Q2M",  # SMS reply code
    ]


@pytest.mark.parametrize("language", list(Language))
def test_the_email_states_every_field_a_recall_notice_needs(language: Language):
    subject, html, text = render_email(notice(), language)
    assert subject.startswith(TITLES[language]) and "RC-2026-0007" in subject
    for expected in _required_texts(language):
        assert expected in text, f"text part lacks {expected!r}"
        assert expected in html, f"HTML part lacks {expected!r}"
    assert f'lang="{language.value}"' in html
    other = Language.en if language is Language.zh_CN else Language.zh_CN
    assert TITLES[other] not in html + text  # one language per notice


def test_an_eu_notice_is_an_urgent_field_safety_notice():
    subject, html, text = render_email(
        notice(jurisdiction="EU", nmpa_level=None, fda_class=None), Language.en
    )
    assert subject.startswith("Urgent Field Safety Notice")
    assert "Urgent Field Safety Notice" in html and "Urgent Field Safety Notice" in text
    assert "MEDICAL DEVICE RECALL" not in html
    assert LABELS[Language.en]["level"] not in text  # no level is invented where the regulator has none


def test_html_escapes_what_people_typed_and_the_text_part_keeps_it_verbatim():
    reason = '<script>alert("x")</script> & <b>bold</b>'
    _, html, text = render_email(notice(reason=reason, consignee_name="O'Brien & Sons <Ltd>"), Language.en)
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "O&#39;Brien &amp; Sons &lt;Ltd&gt;" in html
    assert reason in text and "O'Brien & Sons <Ltd>" in text


@pytest.mark.parametrize("language", list(Language))
def test_the_sms_names_reference_product_lots_link_and_reply_code(language: Language):
    content = notice()
    body = render_sms(content, language)
    for expected in (
        "RC-2026-0007",
        "一次性使用输液器",
        "L2401",
        "L2402",
        content.acknowledgement_url,
        "K7Q2M",
    ):
        assert expected in body
    assert len(body) <= SMS_MAX_CHARS


@pytest.mark.parametrize("language", list(Language))
def test_an_sms_for_many_lots_is_summarised_but_keeps_the_link_and_code(language: Language):
    lots = [{"lot_number": f"LOT-2026-{i:04d}"} for i in range(40)]
    product = {"name": "Infusion set", "model": "IV", "catalogue_number": "C1", "udi_di": "1", "lots": lots}
    content = notice(products=[product, {**product, "name": "Extension line"}])
    body = render_sms(content, language)
    assert len(body) <= SMS_MAX_CHARS
    assert "LOT-2026-0000" in body and content.acknowledgement_url in body and "K7Q2M" in body
    assert ("more" in body) if language is Language.en else ("等" in body)


def test_bad_notice_input_is_refused_with_the_field_named():
    with pytest.raises(ValidationError) as err:
        notice(products=[])
    assert err.value.errors()[0]["loc"] == ("products",)
    with pytest.raises(ValidationError) as err:
        SmsSpec(notice_key="k", to="13800138000", content=notice())
    assert err.value.errors()[0]["loc"] == ("to",)
    with pytest.raises(ValidationError):
        notice(contact={"name": "Nobody"})  # a contact nobody can reach
