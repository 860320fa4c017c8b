"""A small valid set of import files (the CSV contract), and helpers to vary it and watch the store."""

from __future__ import annotations

from sqlalchemy import inspect, text

from domain.gs1 import gtin_check_digit
from tests.factories import make_gtin

GTIN_STENT, GTIN_CATH = make_gtin(901), make_gtin(902)
GTIN13_WIRE = "695000000903" + str(gtin_check_digit("695000000903"))  # a GTIN-13, stored as 14 digits

VALID: dict[str, str] = {
    "products.csv": f"""code,name,gtin,risk_class,implantable,shelf_life_days
STENT-01,冠脉支架 Coronary stent,{GTIN_STENT},III,true,730
CATH-02,Catheter,{GTIN_CATH},II,no,
WIRE-03,Guide wire,{GTIN13_WIRE},i,0,365
""",
    "locations.csv": """code,name,kind
WH-SH,上海仓库,warehouse
QA-1,Quarantine,quarantine
""",
    # The sub-account comes before its parent; one phone is written with spaces.
    "consignees.csv": """code,name,kind,email,phone,language,region,parent_code
H-002,瑞金医院,hospital,h2@example.org,+8613800138002,,上海,D-001
D-001,华东经销商,distributor,d1@example.org,+86 138 0013 8001,zh-CN,上海,
H-003,St Mary,hospital,,+14155552671,en,California,
""",
    "lots.csv": """product_code,lot_number,manufactured_on,expires_on,quantity
WIRE-03,W100,2026-01-05,2027-01-05,1000
STENT-01,S1,2026-02-01,2028-02-01,50
STENT-01,S2,2026-02-10,,
CATH-02,C7,2026-03-01,2028-03-01,200
""",
    "serials.csv": """product_code,lot_number,serial
STENT-01,S1,SN0001
STENT-01,S1,SN0002
STENT-01,S2,SN0101
""",
    "genealogy.csv": """product_code,lot_number,component_product_code,component_lot_number,quantity
STENT-01,S1,WIRE-03,W100,50
CATH-02,C7,WIRE-03,W100,200
""",
    "stock.csv": """location_code,product_code,lot_number,quantity
WH-SH,STENT-01,S1,40
WH-SH,CATH-02,C7,150
QA-1,WIRE-03,W100,700
""",
    "shipments.csv": """shipment_ref,consignee_code,product_code,lot_number,serial,quantity,shipped_on
SHP-001,D-001,STENT-01,S1,SN0001,1,2026-04-01
SHP-001,D-001,CATH-02,C7,,30,2026-04-01
SHP-002,H-002,STENT-01,S1,SN0002,1,2026-04-03
SHP-003,H-003,CATH-02,C7,,20,2026-04-05
""",
}

# Rows per file in VALID.
VALID_ROWS = {name: body.count("\n") - 1 for name, body in VALID.items()}


def valid_files(**replace: str | bytes | None) -> dict[str, bytes]:
    """The valid set as bytes; ``products_csv="..."`` replaces a file, ``None`` leaves it out."""
    files: dict[str, bytes] = {name: body.encode() for name, body in VALID.items()}
    for key, body in replace.items():
        name = key.removesuffix("_csv") + ".csv"
        if body is None:
            files.pop(name, None)
        else:
            files[name] = body.encode() if isinstance(body, str) else body
    return files


def with_line(file: str, line: str) -> str:
    """The valid file with one more data line at the end."""
    return VALID[file] + line + "\n"


async def table_counts(store) -> dict[str, int]:
    """Rows in every table of the store (whoever's tables they are)."""
    async with store.engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        return {
            name: (await conn.execute(text(f'SELECT count(*) FROM "{name}"'))).scalar_one()
            for name in sorted(names)
            if name != "alembic_version"
        }
