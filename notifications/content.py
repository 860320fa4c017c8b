"""What a recall notice says, what a channel is asked to send, and what it answers.

Plain pydantic models (no I/O imports), so activities can pass them through Temporal as they are.
The fields follow DOMAIN.md, "The notice and the acknowledgement".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.enums import Language

# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
E164_PATTERN = r"^\+[1-9]\d{1,14}$"


class Channel(StrEnum):
    """How a notice travels."""

    email = "email"
    sms = "sms"


class RequiredAction(StrEnum):
    """What the consignee must do with affected units (DOMAIN.md: stop use, quarantine, return, correct,
    destroy)."""

    stop_use = "stop_use"
    quarantine = "quarantine"
    return_ = "return"
    correct = "correct"
    destroy = "destroy"


class RecallDepth(StrEnum):
    """How far down the distribution chain the recall reaches."""

    wholesale = "wholesale"
    retail = "retail"
    user = "user"


class Party(BaseModel):
    """A named organisation, such as the manufacturer."""

    name: str = Field(min_length=1)
    address: str | None = None


class Contact(BaseModel):
    """Whom the consignee asks about the recall."""

    name: str = Field(min_length=1)
    phone: str | None = None
    email: str | None = None

    @model_validator(mode="after")
    def _reachable(self) -> Contact:
        if not (self.phone or self.email):
            raise ValueError("a contact needs a phone number or an e-mail address")
        return self


class NoticeLot(BaseModel):
    """One affected lot of a product, with its serials (when serialised) and expiry."""

    lot_number: str = Field(min_length=1)
    serials: list[str] = Field(default_factory=list)
    expires_on: date | None = None
    quantity_shipped: int | None = Field(default=None, ge=0, description="units shipped to this consignee")


class NoticeProduct(BaseModel):
    """An affected device model and its affected lots."""

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    catalogue_number: str = Field(min_length=1)
    udi_di: str = Field(min_length=1, description="the GTIN printed in the UDI")
    lots: list[NoticeLot] = Field(min_length=1)


class NoticeContent(BaseModel):
    """Everything one recall notice to one consignee states, in the words of DOMAIN.md."""

    model_config = ConfigDict(frozen=True)

    jurisdiction: Literal["CN", "US", "EU"] = "CN"
    reference: str = Field(min_length=1, description="the recall's reference, quoted in every reply")
    issued_on: date
    consignee_name: str = Field(min_length=1)
    manufacturer: Party
    products: list[NoticeProduct] = Field(min_length=1)
    shipped_from: date | None = None
    shipped_to: date | None = None
    reason: str = Field(min_length=1)
    hazard: str = Field(min_length=1, description="the risk to patients and users, not understated")
    nmpa_level: Literal[1, 2, 3] | None = None
    fda_class: Literal["I", "II", "III"] | None = None
    depth: RecallDepth = RecallDepth.user
    forward_to_sub_accounts: bool = True
    required_actions: list[RequiredAction] = Field(min_length=1)
    action_details: str | None = None
    regulators_informed: list[str] = Field(min_length=1, description="the authorities already informed")
    contact: Contact
    reply_by: date
    acknowledgement_url: str = Field(pattern=r"^https?://\S+$")
    sms_reply_code: str = Field(pattern=r"^[A-Za-z0-9]{3,12}$")

    @model_validator(mode="after")
    def _dates_in_order(self) -> NoticeContent:
        if self.shipped_from and self.shipped_to and self.shipped_from > self.shipped_to:
            raise ValueError("shipped_from is after shipped_to")
        return self


class EmailSpec(BaseModel):
    """One e-mail to send: one notice to one consignee, in the consignee's language."""

    notice_key: str = Field(min_length=1, description="unique per consignee, channel and attempt")
    to: str = Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    language: Language = Language.zh_CN
    content: NoticeContent


class SmsSpec(BaseModel):
    """One text message to send: one notice to one consignee's mobile number."""

    notice_key: str = Field(min_length=1, description="unique per consignee, channel and attempt")
    to: str = Field(pattern=E164_PATTERN, description="E.164, e.g. +8613800138000")
    language: Language = Language.zh_CN
    content: NoticeContent


class SendResult(BaseModel):
    """What the provider answered for one notice: accepted with its id, or refused and why."""

    notice_key: str
    channel: Channel
    accepted: bool
    provider_id: str | None = Field(default=None, description="the e-mail's Message-ID, or the Twilio SID")
    error_code: str | None = None
    error_reason: str | None = None
    permanent: bool = Field(default=False, description="retrying this address on this channel cannot help")


SpecT = TypeVar("SpecT", contravariant=True)


class NoticeChannel(Protocol[SpecT]):
    """One way of sending notices: ``EmailChannel`` (``EmailSpec``) and ``SmsChannel`` (``SmsSpec``)."""

    channel: Channel

    async def send_many(self, specs: Sequence[SpecT]) -> list[SendResult]:
        """Send a batch; one result per spec, in the same order, never raising for one bad address."""
        ...
