"""GS1 identifiers: GTIN check digits and element strings that identify a lot or a unit (via biip)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from biip import ParseConfig, ParseError, parse
from biip.gs1_messages import GS1Message

from domain.errors import InvalidInput

FNC1 = "\x1d"


def gtin_check_digit(body: str) -> int:
    """The mod-10 check digit for the digits of a GTIN without its last digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def normalize_gtin(value: str, *, field_name: str = "gtin") -> str:
    """A GTIN-8/12/13/14 as 14 digits, after checking its check digit; InvalidInput otherwise."""
    digits = (value or "").strip()
    if not digits.isdigit() or len(digits) not in (8, 12, 13, 14):
        raise InvalidInput(f"GTIN must be 8, 12, 13 or 14 digits, got {value!r}", field=field_name)
    expected = gtin_check_digit(digits[:-1])
    if int(digits[-1]) != expected:
        raise InvalidInput(
            f"GTIN {digits} has check digit {digits[-1]}, expected {expected}", field=field_name
        )
    return digits.zfill(14)


@dataclass(frozen=True)
class Gs1Identity:
    """What a GS1 element string says about a unit or lot."""

    gtin: str
    lot: str | None = None
    serial: str | None = None
    expires_on: date | None = None
    produced_on: date | None = None
    warnings: list[str] = field(default_factory=list)


def parse_element_string(text: str) -> Gs1Identity:
    """Parse ``(01)…(10)…`` or a raw string with FNC1 separators (also the ``]C1``/``]d2`` symbology
    prefixes scanners send) into GTIN, lot, serial and dates."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidInput("empty GS1 element string", field="gs1")
    try:
        if raw.startswith("("):
            msg = GS1Message.parse_hri(raw)
        else:
            result = parse(raw, config=ParseConfig(separator_chars=[FNC1, "|"]))
            msg = result.gs1_message
            if msg is None:
                reason = result.gs1_message_error or "no GS1 application identifiers found"
                raise InvalidInput(f"not a GS1 element string: {reason}", field="gs1")
    except ParseError as exc:
        raise InvalidInput(f"not a GS1 element string: {exc}", field="gs1") from exc
    values: dict[str, object] = {}
    warnings: list[str] = []
    for es in msg.element_strings:
        ai = es.ai.ai
        if ai == "01":
            values["gtin"] = normalize_gtin(es.value, field_name="gs1")
        elif ai == "10":
            values["lot"] = es.value
        elif ai == "21":
            values["serial"] = es.value
        elif ai in ("17", "11"):
            key = "expires_on" if ai == "17" else "produced_on"
            values[key] = es.date
            if es.value.endswith("00"):
                warnings.append(f"AI ({ai}) day 00 (end of month) is no longer allowed for healthcare")
    if "gtin" not in values:
        raise InvalidInput("GS1 element string has no GTIN (AI 01)", field="gs1")
    return Gs1Identity(warnings=warnings, **values)  # type: ignore[arg-type]
