"""The CSV import/export contract in one place: which files, their columns, keys and optional values.

Import (``domain/imports.py``), export (``domain/exports.py``), the ``lotline import`` help and the
``POST /api/imports`` documentation all read these tables, so the format is written down once.
"""

from __future__ import annotations

# File -> columns, in the order import applies them (a file only refers to files before it).
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "products.csv": ("code", "name", "gtin", "risk_class", "implantable", "shelf_life_days"),
    "locations.csv": ("code", "name", "kind"),
    "consignees.csv": ("code", "name", "kind", "email", "phone", "language", "region", "parent_code"),
    "lots.csv": ("product_code", "lot_number", "manufactured_on", "expires_on", "quantity"),
    "serials.csv": ("product_code", "lot_number", "serial"),
    "genealogy.csv": (
        "product_code",
        "lot_number",
        "component_product_code",
        "component_lot_number",
        "quantity",
    ),
    "stock.csv": ("location_code", "product_code", "lot_number", "quantity"),
    "shipments.csv": (
        "shipment_ref",
        "consignee_code",
        "product_code",
        "lot_number",
        "serial",
        "quantity",
        "shipped_on",
    ),
}

# Columns whose value may be empty; such a column may also be left out of the header altogether.
OPTIONAL_COLUMNS: dict[str, frozenset[str]] = {
    "products.csv": frozenset({"shelf_life_days"}),
    "locations.csv": frozenset(),
    # An empty language means the default, zh-CN.
    "consignees.csv": frozenset({"email", "phone", "language", "region", "parent_code"}),
    # An empty quantity means "not recorded" (stored as 0, exported empty).
    "lots.csv": frozenset({"manufactured_on", "expires_on", "quantity"}),
    "serials.csv": frozenset(),
    "genealogy.csv": frozenset(),
    "stock.csv": frozenset(),
    "shipments.csv": frozenset({"serial"}),
}

# The business key of each row: importing a row whose key is stored already changes nothing.
KEYS: dict[str, tuple[str, ...]] = {
    "products.csv": ("code",),
    "locations.csv": ("code",),
    "consignees.csv": ("code",),
    "lots.csv": ("product_code", "lot_number"),
    "serials.csv": ("product_code", "serial"),
    "genealogy.csv": ("product_code", "lot_number", "component_product_code", "component_lot_number"),
    "stock.csv": ("location_code", "product_code", "lot_number"),
    "shipments.csv": ("shipment_ref", "product_code", "lot_number", "serial"),
}


def required_columns(file: str) -> tuple[str, ...]:
    """The columns a file's header must name."""
    return tuple(c for c in CSV_COLUMNS[file] if c not in OPTIONAL_COLUMNS[file])


def describe() -> str:
    """The contract as text, for command help and API documentation."""
    lines = []
    for file, columns in CSV_COLUMNS.items():
        optional = OPTIONAL_COLUMNS[file]
        cols = ",".join(f"[{c}]" if c in optional else c for c in columns)
        lines.append(f"{file}: {cols}")
    return "\n".join(lines)
