"""Import the CSV contract (``domain/csvfiles.py``) into the store: all or nothing, and idempotent.

How it works: every file is read twice, streaming. The first pass checks everything (values,
duplicates, references to the files or to the store, conflicts with stored records) and collects
every problem as an :class:`ImportIssue` naming file, line, column and reason, sorted by file and
line; if there is any, :class:`ImportRejected` is raised and nothing has been written. The second
pass writes in chunks (a Core ``executemany``; ``COPY`` on PostgreSQL) inside the caller's
transaction, so a failure half-way rolls the whole import back; a unique key taken meanwhile by
another writer becomes :class:`~domain.errors.Conflict` ("run it again"). ``on_progress(step,
rows_done, rows_total)`` hears about both passes, ``step`` being ``"check <file>"`` or
``"write <file>"``. A reference into a file some of whose rows could not be read is not reported
as unknown: that file's own errors refuse the import already, and follow-on errors would bury them.

Decisions:

- **Idempotent by business key** (``csvfiles.KEYS``): a row whose key is stored already and whose
  values agree with the store counts as *unchanged* and writes nothing.
- **Conflicts are errors, never overwrites.** A row whose key is stored with different values
  (same product code with another GTIN, a lot with other dates, a serial in another lot, a
  consignee with another phone...) is reported with the stored and the file's value. Imports load
  records; changing a stored record goes through the API, where it is audited.
- **Audited.** New products and lots (regulated records) enter the audit trail in the import's own
  transaction, attributed to whoever is acting (the API's user; the CLI's login) with the reason
  ``CSV import: <file>``; unchanged rows add nothing.
- **Stock** rows post a ``receipt`` ledger entry (reference ``csv-import``) through
  ``domain.inventory.post``, so the on-hand balance at (location, lot) becomes the file's quantity.
  When the ledger already holds stock of that lot at that location (any bucket, even zero after
  movements), the balance must equal the file's quantity (*unchanged*); a different quantity is an
  error: "post a movement instead", because a silent adjustment would hide a discrepancy.
- **Shipments** record Shipment and ShipmentLine rows only; they post no ``shipment`` ledger
  entries, because a shipments file records history that usually predates the stock in the store.
  A shipment's consignee and date must agree on all its lines; a line with a serial ships one unit.
- Lots: an empty ``quantity`` means "not recorded" (stored as 0); new lots start quarantined.
- Consignees: an empty ``language`` means zh-CN; phones are stored in E.164 (``+86 138…`` is
  accepted and normalised); the parent may be in the file or the store, never itself, no cycles.
- Genealogy: a lot cannot be its own component. Longer cycles are not looked for here (it would
  mean walking the whole stored graph); the trace query terminates on them.
- Extra columns are ignored with a warning; at most ``max_errors`` errors are collected.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from enum import Enum
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import phonenumbers
from pydantic import BaseModel, Field
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain import inventory
from domain.audit import with_reason
from domain.audit.hooks import record_rows
from domain.csvfiles import CSV_COLUMNS, KEYS, OPTIONAL_COLUMNS, required_columns
from domain.enums import ConsigneeKind, Language, LocationKind, MovementKind, RiskClass
from domain.errors import Conflict, InvalidInput
from domain.gs1 import normalize_gtin
from domain.models import (
    Consignee,
    GenealogyEdge,
    Location,
    Lot,
    Product,
    Serial,
    Shipment,
    ShipmentLine,
    StockBalance,
)

CHUNK_SIZE = 5000
LOT_CACHE_SIZE = 200_000
MAX_ERRORS = 1000
STOCK_REFERENCE = "csv-import"
RACE = (
    "the store changed while the import ran (another import or user added the same records); "
    "nothing was imported: run it again"
)

# A file's content: a path, the bytes, a seekable binary file, or a function that opens one.
# (Not a str: it would be unclear whether it is a path or the text.)
Source = Path | bytes | BinaryIO | Callable[[], BinaryIO]
# Called as rows go by: (step, rows_done, rows_total); step is "check <file>" or "write <file>".
ProgressCallback = Callable[[str, int, int], None]


class ImportIssue(BaseModel):
    """One problem at one place in one file: an error (the import is refused) or a warning."""

    file: str
    line: int
    column: str | None = None
    reason: str


class FileCounts(BaseModel):
    """Rows of one file that were written, and rows that were stored already."""

    created: int = 0
    unchanged: int = 0


class ImportResult(BaseModel):
    """What an import did: counts per file, and warnings (ignored columns)."""

    files: dict[str, FileCounts] = Field(default_factory=dict)
    warnings: list[ImportIssue] = Field(default_factory=list)


class ImportRejected(InvalidInput):
    """The files have errors; nothing was changed. ``issues`` lists every one found."""

    def __init__(self, issues: list[ImportIssue]) -> None:
        self.issues = issues
        first = issues[0]
        where = f"{first.file} line {first.line}" + (f" column {first.column}" if first.column else "")
        super().__init__(
            f"{len(issues)} problem(s) in the import, nothing was changed; first: {where}: {first.reason}",
            field=first.column,
        )


# ---------------------------------------------------------------- values


class _Bad(ValueError):
    """A value that cannot be read; the message is the reason shown to the user."""


def _text(max_len: int) -> Callable[[str], str]:
    def parse(v: str) -> str:
        if len(v) > max_len:
            raise _Bad(f"at most {max_len} characters, got {len(v)}")
        return v

    return parse


def _gtin(v: str) -> str:
    try:
        return normalize_gtin(v)
    except InvalidInput as exc:
        raise _Bad(exc.reason) from exc


def _choice(cls: type[Enum], *, fold: Callable[[str], str] = str.lower) -> Callable[[str], Any]:
    table = {fold(m.value): m for m in cls}
    allowed = ", ".join(m.value for m in cls)

    def parse(v: str) -> Any:
        try:
            return table[fold(v)]
        except KeyError:
            raise _Bad(f"must be one of {allowed}, got {v!r}") from None

    return parse


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _bool(v: str) -> bool:
    try:
        return _BOOLS[v.lower()]
    except KeyError:
        raise _Bad(f"must be true/false, yes/no or 1/0, got {v!r}") from None


def _date(v: str) -> date:
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise _Bad(f"must be an ISO 8601 date (YYYY-MM-DD), got {v!r}") from None


_WHOLE = re.compile(r"[+-]?\d+")
_MAX_QUANTITY = 2**62


def _positive(v: str) -> int:
    if v.isascii() and v.isdigit():  # the common case, without the regex
        n = int(v)
    elif _WHOLE.fullmatch(v):
        n = int(v)
    else:
        raise _Bad(f"must be a positive whole number, got {v!r}")
    if n <= 0:
        raise _Bad(f"must be a positive whole number, got {n}")
    if n > _MAX_QUANTITY:
        raise _Bad(f"is too large: {n}")
    return n


def _phone(v: str) -> str:
    example = "+8613800138000"
    if not v.startswith("+"):
        raise _Bad(f"must be in E.164 form with the country code, like {example}, got {v!r}")
    try:
        number = phonenumbers.parse(v, None)
    except phonenumbers.NumberParseException:
        raise _Bad(f"must be in E.164 form, like {example}, got {v!r}") from None
    if not phonenumbers.is_valid_number(number):
        raise _Bad(f"{v!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _email(v: str) -> str:
    if len(v) > 255 or not _EMAIL.fullmatch(v):
        raise _Bad(f"is not an e-mail address: {v!r}")
    return v


_CODE, _NAME, _LOT, _SERIAL = _text(64), _text(255), _text(20), _text(20)

# How each column is read; the keys must be exactly the contract's columns (checked below).
_PARSERS: dict[str, dict[str, Callable[[str], Any]]] = {
    "products.csv": {
        "code": _CODE,
        "name": _NAME,
        "gtin": _gtin,
        "risk_class": _choice(RiskClass, fold=str.upper),
        "implantable": _bool,
        "shelf_life_days": _positive,
    },
    "locations.csv": {"code": _CODE, "name": _NAME, "kind": _choice(LocationKind)},
    "consignees.csv": {
        "code": _CODE,
        "name": _NAME,
        "kind": _choice(ConsigneeKind),
        "email": _email,
        "phone": _phone,
        "language": _choice(Language),
        "region": _text(64),
        "parent_code": _CODE,
    },
    "lots.csv": {
        "product_code": _CODE,
        "lot_number": _LOT,
        "manufactured_on": _date,
        "expires_on": _date,
        "quantity": _positive,
    },
    "serials.csv": {"product_code": _CODE, "lot_number": _LOT, "serial": _SERIAL},
    "genealogy.csv": {
        "product_code": _CODE,
        "lot_number": _LOT,
        "component_product_code": _CODE,
        "component_lot_number": _LOT,
        "quantity": _positive,
    },
    "stock.csv": {"location_code": _CODE, "product_code": _CODE, "lot_number": _LOT, "quantity": _positive},
    "shipments.csv": {
        "shipment_ref": _CODE,
        "consignee_code": _CODE,
        "product_code": _CODE,
        "lot_number": _LOT,
        "serial": _SERIAL,
        "quantity": _positive,
        "shipped_on": _date,
    },
}
assert all(set(_PARSERS[f]) == set(cols) for f, cols in CSV_COLUMNS.items()), "parsers follow the contract"

# What an empty optional value means, where it is not "nothing".
_DEFAULTS: dict[tuple[str, str], Any] = {
    ("consignees.csv", "language"): Language.zh_CN,
    ("lots.csv", "quantity"): 0,
}


def _show(v: Any) -> str:
    if v is None:
        return "(empty)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Enum):
        return str(v.value)
    if isinstance(v, date):
        return v.isoformat()
    return repr(v) if isinstance(v, str) else str(v)


# ---------------------------------------------------------------- reading files


@contextmanager
def _open(source: Source) -> Iterator[BinaryIO]:
    if isinstance(source, bytes | bytearray):
        yield io.BytesIO(source)
    elif isinstance(source, Path):
        with open(source, "rb") as f:
            yield f
    elif hasattr(source, "read"):
        source.seek(0)  # type: ignore[union-attr]
        yield source  # type: ignore[misc]
    elif callable(source):
        f = source()
        try:
            yield f
        finally:
            f.close()
    else:
        raise TypeError(
            f"a source is a Path, bytes, a binary file or a function opening one, not {source!r:.40}"
        )


def _count_rows(source: Source) -> int:
    """Data rows, estimated from the line count (one header line, one row per line)."""
    lines, last = 0, b"\n"
    with _open(source) as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        lines += 1
    return max(lines - 1, 0)


def _decode(stream: BinaryIO, bad: dict[int, str]) -> Iterator[str]:
    """Lines as text; a line that is not UTF-8 is noted in ``bad`` (line -> reason) and read leniently."""
    offset = 0
    for n, raw in enumerate(stream, start=1):
        body = raw
        if n == 1 and raw.startswith(codecs.BOM_UTF8):  # Excel's "CSV UTF-8" writes a byte-order mark
            body, offset = raw[3:], 3
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad[n] = (
                f"not valid UTF-8: byte 0x{body[exc.start]:02x} at byte offset {offset + exc.start}; "
                "save the file as UTF-8 (in Excel: CSV UTF-8)"
            )
            text = body.decode("utf-8", errors="replace")
        offset += len(body)
        yield text


class _Row(dict):
    """One data row: column -> value (None when empty or unreadable), its line, and whether all was read."""

    __slots__ = ("line", "ok")

    def __init__(self, line: int, values: dict[str, Any], ok: bool) -> None:
        super().__init__(values)
        self.line = line
        self.ok = ok


class _TooMany(Exception):
    pass


# ---------------------------------------------------------------- stored rows


class _StoredLot(NamedTuple):
    id: int
    manufactured_on: date | None
    expires_on: date | None
    quantity: int


class _StoredSerial(NamedTuple):
    id: int
    lot_id: int
    lot_number: str


class _StoredShipment(NamedTuple):
    id: int
    consignee_code: str
    shipped_on: date


LotKey = tuple[str, str]  # (product code, lot number)


async def import_csv(
    session: AsyncSession,
    *,
    files: Mapping[str, Source],
    on_progress: ProgressCallback | None = None,
    user: str | None = None,
    max_errors: int = MAX_ERRORS,
    chunk_size: int = CHUNK_SIZE,
) -> ImportResult:
    """Check then write the contract's CSV files (name -> content) in the caller's transaction.

    Raises :class:`ImportRejected` listing every problem, having written nothing; the caller's
    transaction makes the write pass all or nothing too.
    """
    run = _Import(session, files, on_progress, user, max_errors, chunk_size)
    return await run.run()


class _Import:
    """One import: the check pass, then the write pass."""

    def __init__(
        self,
        session: AsyncSession,
        files: Mapping[str, Source],
        on_progress: ProgressCallback | None,
        user: str | None,
        max_errors: int,
        chunk_size: int,
    ) -> None:
        self.s = session
        self.sources = dict(files)
        self.on_progress = on_progress
        self.user = user
        self.max_errors = max_errors
        self.chunk_size = chunk_size
        self.errors: list[ImportIssue] = []
        self.warnings: list[ImportIssue] = []
        self.writing = False
        self.totals: dict[str, int] = {}
        self.unreadable: set[str] = set()  # files with a row whose key could not be read
        # Stored lots by key; many rows name the same few lots. Emptied whenever a file pass starts,
        # so that a pass sees the lots the previous files wrote.
        self.lot_cache: dict[LotKey, _StoredLot] = {}
        # What the files define (key -> line, or what later files need to know).
        self.f_products: dict[str, int] = {}
        self.f_gtins: dict[str, tuple[str | None, int]] = {}
        self.f_locations: dict[str, int] = {}
        self.f_consignees: dict[str, tuple[str | None, int]] = {}  # code -> (parent code, line)
        self.f_lots: dict[LotKey, int] = {}
        self.f_serials: dict[tuple[str, str], str] = {}  # (product, serial) -> lot number
        self.f_edges: dict[tuple[str, str, str, str], int] = {}
        self.f_stock: dict[tuple[str, str, str], int] = {}
        self.f_lines: dict[tuple[str, str, str, str | None], int] = {}
        self.f_shipments: dict[str, tuple[str | None, date | None, int]] = {}
        # Small tables, read whole.
        self.products: dict[str, dict[str, Any]] = {}
        self.gtins: dict[str, str] = {}
        self.locations: dict[str, dict[str, Any]] = {}
        self.consignees: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------ driver

    async def run(self) -> ImportResult:
        for name in self.sources:
            if name not in CSV_COLUMNS:
                self.errors.append(
                    ImportIssue(
                        file=name,
                        line=0,
                        reason=f"not a file of the import; expected one of {', '.join(CSV_COLUMNS)}",
                    )
                )
        present = [f for f in CSV_COLUMNS if f in self.sources]
        await self._load_small_tables()
        try:
            for file in present:
                self.totals[file] = _count_rows(self.sources[file])
                await getattr(self, "_check_" + file.removesuffix(".csv"))(file)
        except _TooMany:
            last = self.errors[-1]
            self._sort_errors()
            self.errors.append(
                ImportIssue(file=last.file, line=last.line, reason=f"stopped after {self.max_errors} errors")
            )
        else:
            self._sort_errors()
        if self.errors:
            raise ImportRejected(self.errors)
        self.writing = True
        result = ImportResult(warnings=self.warnings)
        try:
            for file in present:
                result.files[file] = await getattr(self, "_write_" + file.removesuffix(".csv"))(file)
        except IntegrityError as exc:
            raise Conflict(RACE) from exc
        return result

    def _sort_errors(self) -> None:
        order = {f: i for i, f in enumerate(CSV_COLUMNS)}
        self.errors.sort(key=lambda i: (order.get(i.file, -1), i.line))  # stable: columns keep their order

    def error(self, file: str, line: int, column: str | None, reason: str) -> None:
        """Note an error; past the limit, stop checking."""
        issue = ImportIssue(file=file, line=line, column=column, reason=reason)
        if self.writing:  # the file changed between the passes: give up, the transaction rolls back
            raise ImportRejected([issue])
        self.errors.append(issue)
        if len(self.errors) >= self.max_errors:
            raise _TooMany

    def unknown(self, file: str, row: _Row, column: str, what: str, ref_file: str) -> None:
        """Note a reference to something in neither the files nor the store.

        Not when some rows of ``ref_file`` could not be read: the thing may be on such a row, and
        that file's own errors already refuse the import (no cascade of follow-on errors).
        """
        if ref_file not in self.unreadable:
            self.error(file, row.line, column, f"unknown {what}: not in {ref_file} nor in the store")

    def compare(self, file: str, row: _Row, stored: Mapping[str, Any], what: str) -> bool:
        """Note every column where the row disagrees with the stored record; True if all agree."""
        same = True
        for column, value in stored.items():
            if column in row and row[column] != value:
                same = False
                self.error(
                    file,
                    row.line,
                    column,
                    f"{what} is stored with {column} {_show(value)}, the file says {_show(row[column])}; "
                    "an import never overwrites stored records",
                )
        return same

    # ------------------------------------------------------------ reading

    def _rows(self, file: str) -> Iterator[_Row]:
        columns, optional, parsers = CSV_COLUMNS[file], OPTIONAL_COLUMNS[file], _PARSERS[file]
        bad_lines: dict[int, str] = {}
        index: dict[str, int] | None = None
        plan: list[tuple[str, int, Callable[[str], Any], bool, Any, bool]] = []
        width = 0
        end = 0
        with _open(self.sources[file]) as stream:
            reader = csv.reader(_decode(stream, bad_lines))
            try:
                for record in reader:
                    start, end = end + 1, reader.line_num
                    if bad_lines:
                        self._encoding_errors(file, bad_lines, start, end, record, index)
                    if not record or (len(record) == 1 and not record[0].strip()):
                        continue  # blank line
                    if index is None:
                        index = self._header(file, start, record)
                        if index is None:
                            self.unreadable.add(file)
                            return
                        width = len(record)
                        plan = [
                            (
                                column,
                                index.get(column, -1),
                                parsers[column],
                                column in optional,
                                _DEFAULTS.get((file, column)),
                                column in KEYS[file],
                            )
                            for column in columns
                        ]
                        continue
                    if len(record) != width:
                        self.unreadable.add(file)
                        self.error(
                            file, start, None, f"{len(record)} values, but the header has {width} columns"
                        )
                        continue
                    values: dict[str, Any] = {}
                    ok = True
                    for column, pos, parse, optional_value, default, is_key in plan:
                        raw = record[pos].strip() if pos >= 0 else ""
                        if not raw:
                            values[column] = default
                            if not optional_value:
                                ok = False
                                if is_key:
                                    self.unreadable.add(file)
                                self.error(file, start, column, f"{column} is required")
                            continue
                        try:
                            values[column] = parse(raw)
                        except _Bad as exc:
                            values[column] = None
                            ok = False
                            if is_key:
                                self.unreadable.add(file)
                            self.error(file, start, column, f"{column} {exc}")
                    yield _Row(start, values, ok)
            except csv.Error as exc:
                self.unreadable.add(file)
                self.error(file, end + 1, None, f"cannot read the CSV here: {exc}")
        if index is None:
            self.unreadable.add(file)
            expected = ",".join(columns)
            self.error(file, 1, None, f"the file is empty; expected a header line: {expected}")

    def _encoding_errors(
        self,
        file: str,
        bad_lines: dict[int, str],
        start: int,
        end: int,
        record: list[str],
        index: dict[str, int] | None,
    ) -> None:
        for line in range(start, end + 1):
            reason = bad_lines.pop(line, None)
            if reason is None:
                continue
            column = None
            if index is not None:  # name the column whose value holds the undecodable bytes
                where = next((i for i, v in enumerate(record) if "\ufffd" in v), None)
                column = next((c for c, i in index.items() if i == where), None)
            self.error(file, line, column, reason)

    def _header(self, file: str, line: int, record: list[str]) -> dict[str, int] | None:
        names = [h.strip().lower() for h in record]
        index: dict[str, int] = {}
        ok = True
        for pos, name in enumerate(names):
            if name in index:
                ok = False
                self.error(file, line, name, f"column {name!r} appears twice in the header")
            elif name in CSV_COLUMNS[file]:
                index[name] = pos
            else:
                shown = name or f"#{pos + 1} (no name)"
                if not self.writing:
                    self.warnings.append(
                        ImportIssue(
                            file=file,
                            line=line,
                            column=name or None,
                            reason=f"column {shown} is not part of {file}; ignored",
                        )
                    )
        for column in required_columns(file):
            if column not in index:
                ok = False
                self.error(
                    file,
                    line,
                    column,
                    f"missing column {column!r}; the header must name {','.join(required_columns(file))}",
                )
        return index if ok else None

    def _chunks(self, file: str) -> Iterator[list[_Row]]:
        step = ("write " if self.writing else "check ") + file
        self.lot_cache.clear()
        total, done = self.totals.get(file, 0), 0
        if self.on_progress:
            self.on_progress(step, 0, total)
        chunk: list[_Row] = []
        for row in self._rows(file):
            chunk.append(row)
            if len(chunk) >= self.chunk_size:
                done += len(chunk)
                yield chunk
                chunk = []
                if self.on_progress:
                    self.on_progress(step, done, max(total, done))
        if chunk:
            done += len(chunk)
            yield chunk
        if self.on_progress:
            self.on_progress(step, done, done)

    # ------------------------------------------------------------ the store

    async def _load_small_tables(self) -> None:
        await self._load_products()
        await self._load_locations()
        await self._load_consignees()

    async def _load_products(self) -> None:
        rows = await self.s.execute(
            select(
                Product.id,
                Product.code,
                Product.name,
                Product.gtin,
                Product.risk_class,
                Product.implantable,
                Product.shelf_life_days,
            )
        )
        self.products = {r.code: r._asdict() for r in rows}
        self.gtins = {p["gtin"]: code for code, p in self.products.items()}

    async def _load_locations(self) -> None:
        rows = await self.s.execute(select(Location.id, Location.code, Location.name, Location.kind))
        self.locations = {r.code: r._asdict() for r in rows}

    async def _load_consignees(self) -> None:
        parent = aliased(Consignee)
        rows = await self.s.execute(
            select(
                Consignee.id,
                Consignee.code,
                Consignee.name,
                Consignee.kind,
                Consignee.email,
                Consignee.phone,
                Consignee.language,
                Consignee.region,
                parent.code.label("parent_code"),
            ).outerjoin(parent, Consignee.parent_id == parent.id)
        )
        self.consignees = {r.code: r._asdict() for r in rows}

    async def _stored_lots(self, keys: set[LotKey]) -> dict[LotKey, _StoredLot]:
        cache = self.lot_cache
        found = {k: cache[k] for k in keys if k in cache}
        keys = {k for k in keys if k not in cache and k[0] in self.products}
        if not keys:
            return found
        if len(cache) > LOT_CACHE_SIZE:
            cache.clear()
        rows = await self.s.execute(
            select(Lot.id, Product.code, Lot.lot_number, Lot.manufactured_on, Lot.expires_on, Lot.quantity)
            .join(Product, Lot.product_id == Product.id)
            .where(
                Product.code.in_(list({k[0] for k in keys})), Lot.lot_number.in_(list({k[1] for k in keys}))
            )
        )
        for r in rows:
            key = (r.code, r.lot_number)
            if key in keys:
                found[key] = cache[key] = _StoredLot(r.id, r.manufactured_on, r.expires_on, r.quantity)
        return found

    async def _stored_serials(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _StoredSerial]:
        keys = {k for k in keys if k[0] in self.products}
        if not keys:
            return {}
        rows = await self.s.execute(
            select(Serial.id, Serial.serial, Serial.lot_id, Product.code, Lot.lot_number)
            .join(Product, Serial.product_id == Product.id)
            .join(Lot, Serial.lot_id == Lot.id)
            .where(
                Product.code.in_(list({k[0] for k in keys})), Serial.serial.in_(list({k[1] for k in keys}))
            )
        )
        return {
            (r.code, r.serial): _StoredSerial(r.id, r.lot_id, r.lot_number)
            for r in rows
            if (r.code, r.serial) in keys
        }

    async def _stored_edges(self, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
        if not pairs:
            return {}
        rows = await self.s.execute(
            select(GenealogyEdge.component_lot_id, GenealogyEdge.parent_lot_id, GenealogyEdge.quantity).where(
                GenealogyEdge.component_lot_id.in_(list({p[0] for p in pairs})),
                GenealogyEdge.parent_lot_id.in_(list({p[1] for p in pairs})),
            )
        )
        return {(c, p): q for c, p, q in rows if (c, p) in pairs}

    async def _stored_balances(self, pairs: set[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """On hand per (location id, lot id), over both buckets, where the ledger has ever had any."""
        if not pairs:
            return {}
        rows = await self.s.execute(
            select(StockBalance.location_id, StockBalance.lot_id, func.sum(StockBalance.quantity))
            .where(StockBalance.lot_id.in_(list({p[1] for p in pairs})))
            .group_by(StockBalance.location_id, StockBalance.lot_id)
        )
        return {(loc, lot): int(q) for loc, lot, q in rows if (loc, lot) in pairs}

    async def _stored_shipments(self, refs: set[str]) -> dict[str, _StoredShipment]:
        if not refs:
            return {}
        rows = await self.s.execute(
            select(Shipment.id, Shipment.ref, Consignee.code, Shipment.shipped_on)
            .join(Consignee, Shipment.consignee_id == Consignee.id)
            .where(Shipment.ref.in_(list(refs)))
        )
        return {r.ref: _StoredShipment(r.id, r.code, r.shipped_on) for r in rows}

    async def _stored_lines(self, shipment_ids: set[int]) -> dict[tuple[int, int, int | None], int]:
        """Quantity per (shipment, lot, serial); repeated lines of one key are added up."""
        if not shipment_ids:
            return {}
        rows = await self.s.execute(
            select(
                ShipmentLine.shipment_id,
                ShipmentLine.lot_id,
                ShipmentLine.serial_id,
                func.sum(ShipmentLine.quantity),
            )
            .where(ShipmentLine.shipment_id.in_(list(shipment_ids)))
            .group_by(ShipmentLine.shipment_id, ShipmentLine.lot_id, ShipmentLine.serial_id)
        )
        return {(s, lot, ser): int(q) for s, lot, ser, q in rows}

    async def _audit_created(self, file: str, model: type, stored: list[dict[str, Any]]) -> None:
        """Bulk writes bypass the session's audit hooks: append the created rows' entries here, in the
        same transaction (an import that rolls back leaves no entry), with the file as the reason."""
        with with_reason(f"CSV import: {file}"):
            await record_rows(self.s, model, stored, action="create")

    async def _insert(self, model: type, rows: list[dict[str, Any]]) -> None:
        """Insert a chunk of rows: a Core executemany, or on PostgreSQL a COPY (several times faster)."""
        if not rows:
            return
        table: Table = model.__table__  # type: ignore[attr-defined]
        conn = await self.s.connection()
        if conn.dialect.name != "postgresql":
            await conn.execute(insert(table), rows)
            return
        # COPY skips SQLAlchemy, so apply what it would: Python-side defaults and bind processing
        # (enums to their values), through the column types' own processors.
        columns = list(rows[0])
        defaults = [c for c in table.c if c.name not in columns and c.default is not None]
        names = columns + [c.name for c in defaults]
        processors = [table.c[n].type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for n in names]
        extra = tuple(c.default.arg(None) if c.default.is_callable else c.default.arg for c in defaults)  # type: ignore[union-attr]
        records = []
        for row in rows:
            values = (*(row[c] for c in columns), *extra)
            records.append(
                tuple(v if p is None or v is None else p(v) for v, p in zip(values, processors, strict=True))
            )
        raw = await conn.get_raw_connection()
        try:
            await raw.driver_connection.copy_records_to_table(table.name, records=records, columns=names)  # type: ignore[union-attr]
        except Exception as exc:  # the driver's own error: SQLAlchemy does not wrap a raw COPY
            if str(getattr(exc, "sqlstate", "")).startswith("23"):  # integrity constraint violation
                raise Conflict(RACE) from exc
            raise

    # ------------------------------------------------------------ helpers for checks

    def duplicate(self, file: str, row: _Row, seen: dict, key: Any) -> bool:
        """True (and an error) when the key was on an earlier line of the same file."""
        first = seen.get(key)
        if first is not None:
            cols = KEYS[file]
            shown = ", ".join(f"{c}={_show(row[c])}" for c in cols)
            self.error(file, row.line, cols[0], f"duplicate row: {shown} is already on line {first}")
            return True
        seen[key] = row.line
        return False

    def product_known(self, file: str, row: _Row, column: str) -> bool:
        code = row[column]
        if code is None:
            return False
        if code in self.f_products or code in self.products:
            return True
        self.unknown(file, row, column, f"product {code!r}", "products.csv")
        return False

    def lot_known(self, file: str, row: _Row, key: LotKey, column: str, stored: dict) -> bool:
        if key in self.f_lots or key in stored:
            return True
        self.unknown(file, row, column, f"lot {key[1]!r} of product {key[0]!r}", "lots.csv")
        return False

    # ------------------------------------------------------------ check pass, one method per file

    async def _check_products(self, file: str) -> None:
        for chunk in self._chunks(file):
            for row in chunk:
                code, gtin = row["code"], row["gtin"]
                if code is not None and self.duplicate(file, row, self.f_products, code):
                    continue
                if gtin is not None:
                    other = self.f_gtins.get(gtin)
                    if other is not None:
                        self.error(file, row.line, "gtin", f"GTIN {gtin} is also on line {other[1]}")
                    else:
                        self.f_gtins[gtin] = (code, row.line)
                    owner = self.gtins.get(gtin)
                    if owner is not None and owner != code:
                        self.error(file, row.line, "gtin", f"GTIN {gtin} belongs to stored product {owner!r}")
                stored = self.products.get(code) if code is not None else None
                if row.ok and stored is not None:
                    fields = ("name", "gtin", "risk_class", "implantable", "shelf_life_days")
                    self.compare(file, row, {k: stored[k] for k in fields}, f"product {code!r}")

    async def _check_locations(self, file: str) -> None:
        for chunk in self._chunks(file):
            for row in chunk:
                code = row["code"]
                if code is None or self.duplicate(file, row, self.f_locations, code):
                    continue
                stored = self.locations.get(code)
                if row.ok and stored is not None:
                    self.compare(file, row, {k: stored[k] for k in ("name", "kind")}, f"location {code!r}")

    async def _check_consignees(self, file: str) -> None:
        fields = ("name", "kind", "email", "phone", "language", "region", "parent_code")
        seen: dict[str, int] = {}
        for chunk in self._chunks(file):
            for row in chunk:
                code = row["code"]
                if code is None or self.duplicate(file, row, seen, code):
                    continue
                self.f_consignees[code] = (row["parent_code"], row.line)
                stored = self.consignees.get(code)
                if row.ok and stored is not None:
                    self.compare(file, row, {k: stored[k] for k in fields}, f"consignee {code!r}")
        self._check_consignee_parents(file)

    def _check_consignee_parents(self, file: str) -> None:
        graph = {code: c["parent_code"] for code, c in self.consignees.items()}
        graph.update({code: parent for code, (parent, _line) in self.f_consignees.items()})
        acyclic: set[str] = set()
        for code, (parent, line) in self.f_consignees.items():
            if parent is None:
                continue
            if parent == code:
                self.error(file, line, "parent_code", f"consignee {code!r} cannot be its own parent")
                continue
            if parent not in graph:
                self.error(
                    file, line, "parent_code", f"unknown consignee {parent!r}: not in {file} nor in the store"
                )
                continue
            path, current = [code], parent
            while current is not None and current not in acyclic:
                if current == code:
                    chain = " → ".join([*path, code])
                    self.error(file, line, "parent_code", f"parent accounts form a cycle: {chain}")
                    break
                if current in path:  # a cycle further up; its own rows report it
                    break
                path.append(current)
                current = graph.get(current)
            else:
                acyclic.update(path)

    async def _check_lots(self, file: str) -> None:
        for chunk in self._chunks(file):
            stored = await self._stored_lots(self._keys(chunk, "product_code", "lot_number"))
            for row in chunk:
                pc, number = row["product_code"], row["lot_number"]
                if pc is None or number is None or self.duplicate(file, row, self.f_lots, (pc, number)):
                    continue
                if not self.product_known(file, row, "product_code") or not row.ok:
                    continue
                made, expires = row["manufactured_on"], row["expires_on"]
                if made is not None and expires is not None and expires <= made:
                    self.error(
                        file,
                        row.line,
                        "expires_on",
                        f"expires_on {expires} must be after manufactured_on {made}",
                    )
                old = stored.get((pc, number))
                if old is not None:
                    self.compare(
                        file,
                        row,
                        {
                            "manufactured_on": old.manufactured_on,
                            "expires_on": old.expires_on,
                            "quantity": old.quantity,
                        },
                        f"lot {number!r} of {pc!r}",
                    )

    def lot_ref(self, file: str, row: _Row, product_column: str, lot_column: str, stored: dict) -> bool:
        """Check a (product, lot) reference whose values could be read; True if it resolves."""
        if not self.product_known(file, row, product_column) or row[lot_column] is None:
            return False
        return self.lot_known(file, row, (row[product_column], row[lot_column]), lot_column, stored)

    @staticmethod
    def _keys(chunk: list[_Row], *columns: str) -> set[tuple]:
        """The values of two or more ``columns`` in the rows where all of them could be read."""
        get = itemgetter(*columns)
        return {k for k in map(get, chunk) if None not in k}

    async def _check_serials(self, file: str) -> None:
        seen: dict[tuple[str, str], int] = {}
        for chunk in self._chunks(file):
            lots = await self._stored_lots(self._keys(chunk, "product_code", "lot_number"))
            serials = await self._stored_serials(self._keys(chunk, "product_code", "serial"))
            for row in chunk:
                pc, number, serial = row["product_code"], row["lot_number"], row["serial"]
                if pc is not None and serial is not None:
                    if self.duplicate(file, row, seen, (pc, serial)):
                        continue
                    self.f_serials[(pc, serial)] = number
                if not self.lot_ref(file, row, "product_code", "lot_number", lots) or not row.ok:
                    continue
                old = serials.get((pc, serial))
                if old is not None and old.lot_number != number:
                    self.error(
                        file,
                        row.line,
                        "lot_number",
                        f"serial {serial!r} of {pc!r} is stored in lot {old.lot_number!r}, the file says "
                        f"{number!r}; an import never overwrites stored records",
                    )

    async def _check_genealogy(self, file: str) -> None:
        parent_cols, component_cols = (
            ("product_code", "lot_number"),
            ("component_product_code", "component_lot_number"),
        )
        for chunk in self._chunks(file):
            lots = await self._stored_lots(
                self._keys(chunk, *parent_cols) | self._keys(chunk, *component_cols)
            )
            pairs = {}
            for row in chunk:
                parent = lots.get((row["product_code"], row["lot_number"]))
                component = lots.get((row["component_product_code"], row["component_lot_number"]))
                if parent and component:
                    pairs[row.line] = (component.id, parent.id)
            edges = await self._stored_edges(set(pairs.values()))
            for row in chunk:
                parent_key = (row["product_code"], row["lot_number"])
                component_key = (row["component_product_code"], row["component_lot_number"])
                if None not in parent_key and None not in component_key:
                    if self.duplicate(file, row, self.f_edges, (*parent_key, *component_key)):
                        continue
                    if parent_key == component_key:
                        self.error(
                            file, row.line, "component_lot_number", "a lot cannot be a component of itself"
                        )
                        continue
                known = self.lot_ref(file, row, *parent_cols, lots)
                known = self.lot_ref(file, row, *component_cols, lots) and known
                old = edges.get(pairs.get(row.line, (0, 0)))
                if known and row.ok and old is not None and old != row["quantity"]:
                    self.error(
                        file,
                        row.line,
                        "quantity",
                        f"this genealogy edge is stored with quantity {old}, "
                        f"the file says {row['quantity']}; an import never overwrites stored records",
                    )

    async def _check_stock(self, file: str) -> None:
        for chunk in self._chunks(file):
            lots = await self._stored_lots(self._keys(chunk, "product_code", "lot_number"))
            pairs = {}
            for row in chunk:
                location = self.locations.get(row["location_code"])
                lot = lots.get((row["product_code"], row["lot_number"]))
                if location and lot:
                    pairs[row.line] = (location["id"], lot.id)
            balances = await self._stored_balances(set(pairs.values()))
            for row in chunk:
                loc, pc, number = row["location_code"], row["product_code"], row["lot_number"]
                if None not in (loc, pc, number) and self.duplicate(
                    file, row, self.f_stock, (loc, pc, number)
                ):
                    continue
                known = loc is not None and (loc in self.f_locations or loc in self.locations)
                if loc is not None and not known:
                    self.unknown(file, row, "location_code", f"location {loc!r}", "locations.csv")
                if not self.lot_ref(file, row, "product_code", "lot_number", lots) or not known or not row.ok:
                    continue
                have = balances.get(pairs.get(row.line, (0, 0)))
                if have is not None and have != row["quantity"]:
                    self.error(
                        file,
                        row.line,
                        "quantity",
                        f"the stock ledger holds {have} of lot {number!r} at {loc!r}, the file says "
                        f"{row['quantity']}; post a movement (receipt, shipment, destruction) instead",
                    )

    async def _check_shipments(self, file: str) -> None:
        for chunk in self._chunks(file):
            lots = await self._stored_lots(self._keys(chunk, "product_code", "lot_number"))
            serials = await self._stored_serials(self._keys(chunk, "product_code", "serial"))
            shipments = await self._stored_shipments({r["shipment_ref"] for r in chunk} - {None})
            lines = await self._stored_lines({s.id for s in shipments.values()})
            for row in chunk:
                self._check_shipment_line(file, row, lots, serials, shipments, lines)

    def _check_shipment_line(
        self,
        file: str,
        row: _Row,
        lots: dict[LotKey, _StoredLot],
        serials: dict[tuple[str, str], _StoredSerial],
        shipments: dict[str, _StoredShipment],
        lines: dict[tuple[int, int, int | None], int],
    ) -> None:
        ref, consignee, pc = row["shipment_ref"], row["consignee_code"], row["product_code"]
        number, serial, quantity, shipped_on = (
            row["lot_number"],
            row["serial"],
            row["quantity"],
            row["shipped_on"],
        )
        if None not in (ref, pc, number) and self.duplicate(
            file, row, self.f_lines, (ref, pc, number, serial)
        ):
            return
        header = self.f_shipments.get(ref) if ref is not None else None
        if header is None and None not in (ref, consignee, shipped_on):
            self.f_shipments[ref] = (consignee, shipped_on, row.line)
        elif header is not None:
            for column, value, first in (
                ("consignee_code", consignee, header[0]),
                ("shipped_on", shipped_on, header[1]),
            ):
                if value is not None and value != first:
                    self.error(
                        file,
                        row.line,
                        column,
                        f"shipment {ref!r} has {column} {_show(first)} on line {header[2]}, "
                        f"here {_show(value)}",
                    )
        if consignee is not None and consignee not in self.f_consignees and consignee not in self.consignees:
            self.unknown(file, row, "consignee_code", f"consignee {consignee!r}", "consignees.csv")
        if not self.lot_ref(file, row, "product_code", "lot_number", lots):
            return
        serial_id = None
        if serial is not None:
            if quantity is not None and quantity != 1:
                self.error(file, row.line, "quantity", f"a line with a serial ships one unit, got {quantity}")
            in_file = self.f_serials.get((pc, serial))
            stored_serial = serials.get((pc, serial))
            lot_of_serial = (
                in_file if in_file is not None else (stored_serial.lot_number if stored_serial else None)
            )
            if lot_of_serial is None:
                self.unknown(file, row, "serial", f"serial {serial!r} of {pc!r}", "serials.csv")
                return
            if lot_of_serial != number:
                self.error(
                    file,
                    row.line,
                    "serial",
                    f"serial {serial!r} belongs to lot {lot_of_serial!r}, not {number!r}",
                )
                return
            serial_id = stored_serial.id if stored_serial else None
        stored = shipments.get(ref)
        if stored is None or not row.ok:
            return
        self.compare(
            file,
            row,
            {"consignee_code": stored.consignee_code, "shipped_on": stored.shipped_on},
            f"shipment {ref!r}",
        )
        lot = lots.get((pc, number))
        if lot is None or (serial is not None and serial_id is None):
            return  # the line's lot or serial is new, so the line is too
        old = lines.get((stored.id, lot.id, serial_id))
        if old is not None and old != quantity:
            self.error(
                file,
                row.line,
                "quantity",
                f"this line of shipment {ref!r} is stored with quantity {old}, the file says {quantity}; "
                "an import never overwrites stored records",
            )

    # ------------------------------------------------------------ write pass, one method per file

    async def _write_products(self, file: str) -> FileCounts:
        counts = FileCounts()
        for chunk in self._chunks(file):
            new = [dict(r) for r in chunk if r["code"] not in self.products]
            await self._insert(Product, new)
            if new:  # products are regulated records: each new one enters the audit trail
                table = Product.__table__
                stored = await self.s.execute(select(table).where(table.c.code.in_([r["code"] for r in new])))
                await self._audit_created(file, Product, [dict(r._mapping) for r in stored])
            counts.created += len(new)
            counts.unchanged += len(chunk) - len(new)
        await self._load_products()
        return counts

    async def _write_locations(self, file: str) -> FileCounts:
        counts = FileCounts()
        for chunk in self._chunks(file):
            new = [dict(r) for r in chunk if r["code"] not in self.locations]
            await self._insert(Location, new)
            counts.created += len(new)
            counts.unchanged += len(chunk) - len(new)
        await self._load_locations()
        return counts

    async def _write_consignees(self, file: str) -> FileCounts:
        counts = FileCounts()
        parents: dict[str, str] = {}
        for chunk in self._chunks(file):
            new = [dict(r) for r in chunk if r["code"] not in self.consignees]
            await self._insert(Consignee, [{k: v for k, v in r.items() if k != "parent_code"} for r in new])
            parents.update({r["code"]: r["parent_code"] for r in new if r["parent_code"] is not None})
            counts.created += len(new)
            counts.unchanged += len(chunk) - len(new)
        await self._load_consignees()
        if parents:  # parents may come later in the file than their sub-accounts: link them once all exist
            table = Consignee.__table__
            await self.s.execute(
                update(table).where(table.c.id == bindparam("child")).values(parent_id=bindparam("parent")),
                [
                    {"child": self.consignees[child]["id"], "parent": self.consignees[parent]["id"]}
                    for child, parent in parents.items()
                ],
            )
            await self._load_consignees()
        return counts

    async def _write_lots(self, file: str) -> FileCounts:
        counts = FileCounts()
        for chunk in self._chunks(file):
            stored = await self._stored_lots({(r["product_code"], r["lot_number"]) for r in chunk})
            new = [
                {
                    "product_id": self.products[r["product_code"]]["id"],
                    "lot_number": r["lot_number"],
                    "manufactured_on": r["manufactured_on"],
                    "expires_on": r["expires_on"],
                    "quantity": r["quantity"],
                }
                for r in chunk
                if (r["product_code"], r["lot_number"]) not in stored
            ]
            await self._insert(Lot, new)
            if new:  # lots are regulated records: each new one enters the audit trail
                keys = {(r["product_id"], r["lot_number"]) for r in new}
                table = Lot.__table__
                stored = await self.s.execute(
                    select(table).where(
                        table.c.product_id.in_({k[0] for k in keys}),
                        table.c.lot_number.in_({k[1] for k in keys}),
                    )
                )
                rows = [dict(r._mapping) for r in stored]
                await self._audit_created(
                    file, Lot, [r for r in rows if (r["product_id"], r["lot_number"]) in keys]
                )
            counts.created += len(new)
            counts.unchanged += len(chunk) - len(new)
        return counts

    async def _write_serials(self, file: str) -> FileCounts:
        counts = FileCounts()
        for chunk in self._chunks(file):
            lots = await self._stored_lots({(r["product_code"], r["lot_number"]) for r in chunk})
            stored = await self._stored_serials({(r["product_code"], r["serial"]) for r in chunk})
            new = [
                {
                    "product_id": self.products[r["product_code"]]["id"],
                    "lot_id": lots[(r["product_code"], r["lot_number"])].id,
                    "serial": r["serial"],
                }
                for r in chunk
                if (r["product_code"], r["serial"]) not in stored
            ]
            await self._insert(Serial, new)
            counts.created += len(new)
            counts.unchanged += len(chunk) - len(new)
        return counts

    async def _write_genealogy(self, file: str) -> FileCounts:
        counts = FileCounts()
        for chunk in self._chunks(file):
            keys = {(r["product_code"], r["lot_number"]) for r in chunk}
            keys |= {(r["component_product_code"], r["component_lot_number"]) for r in chunk}
            lots = await self._stored_lots(keys)
            rows = {
                (
                    lots[(r["component_product_code"], r["component_lot_number"])].id,
                    lots[(r["product_code"], r["lot_number"])].id,
                ): r["quantity"]
                for r in chunk
            }
            stored = await self._stored_edges(set(rows))
            new = [
                {"component_lot_id": c, "parent_lot_id": p, "quantity": q}
                for (c, p), q in rows.items()
                if (c, p) not in stored
            ]
            await self._insert(GenealogyEdge, new)
            counts.created += len(new)
            counts.unchanged += len(chunk) - len(new)
        return counts

    async def _write_stock(self, file: str) -> FileCounts:
        counts = FileCounts()
        locations = {loc.code: loc for loc in await self.s.scalars(select(Location))}
        for chunk in self._chunks(file):
            lots = await self._stored_lots({(r["product_code"], r["lot_number"]) for r in chunk})
            pairs = {
                r.line: (locations[r["location_code"]].id, lots[(r["product_code"], r["lot_number"])].id)
                for r in chunk
            }
            balances = await self._stored_balances(set(pairs.values()))
            new = [r for r in chunk if pairs[r.line] not in balances]
            objects = {
                lot.id: lot
                for lot in await self.s.scalars(
                    select(Lot).where(Lot.id.in_(list({pairs[r.line][1] for r in new})))
                )
            }
            for r in new:
                await inventory.post(
                    self.s,
                    kind=MovementKind.receipt,
                    lot=objects[pairs[r.line][1]],
                    location=locations[r["location_code"]],
                    quantity=r["quantity"],
                    reference=STOCK_REFERENCE,
                    reason=f"opening stock from {file} line {r.line}",
                    user=self.user,
                )
            counts.created += len(new)
            counts.unchanged += len(chunk) - len(new)
        return counts

    async def _write_shipments(self, file: str) -> FileCounts:
        counts = FileCounts()
        for chunk in self._chunks(file):
            lots = await self._stored_lots({(r["product_code"], r["lot_number"]) for r in chunk})
            serials = await self._stored_serials(
                {(r["product_code"], r["serial"]) for r in chunk if r["serial"] is not None}
            )
            # Shipments stored before this chunk (earlier imports or chunks) may hold some lines already.
            heads = await self._stored_shipments({r["shipment_ref"] for r in chunk})
            ids = {ref: s.id for ref, s in heads.items()}
            stored = await self._stored_lines(set(ids.values()))
            new_heads: dict[str, dict[str, Any]] = {}
            for r in chunk:
                if r["shipment_ref"] not in ids and r["shipment_ref"] not in new_heads:
                    new_heads[r["shipment_ref"]] = {
                        "ref": r["shipment_ref"],
                        "consignee_id": self.consignees[r["consignee_code"]]["id"],
                        "shipped_on": r["shipped_on"],
                    }
            if new_heads:
                await self._insert(Shipment, list(new_heads.values()))
                heads.update(await self._stored_shipments(set(new_heads)))
                ids.update({ref: s.id for ref, s in heads.items()})
            new = []
            for r in chunk:
                serial = serials[(r["product_code"], r["serial"])].id if r["serial"] is not None else None
                head = heads[r["shipment_ref"]]
                line = {
                    "shipment_id": ids[r["shipment_ref"]],
                    "lot_id": lots[(r["product_code"], r["lot_number"])].id,
                    "serial_id": serial,
                    "quantity": r["quantity"],
                    # A line repeats its shipment's consignee and date, as stored (migration 0008).
                    "consignee_id": self.consignees[head.consignee_code]["id"],
                    "shipped_on": head.shipped_on,
                }
                if (line["shipment_id"], line["lot_id"], serial) not in stored:
                    new.append(line)
            await self._insert(ShipmentLine, new)
            counts.created += len(new)
            counts.unchanged += len(chunk) - len(new)
        return counts
