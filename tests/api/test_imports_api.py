"""POST /api/imports: multipart CSV files (by field name, a `files` list or a zip), all or nothing, 422 with
file/line/column/reason, and only admin, qa and warehouse may import."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from api.app import create_app
from api.security import Principal, issue_token
from domain.enums import Role
from lotline.settings import Settings
from tests.csvsets import VALID_ROWS, table_counts, valid_files, with_line


@dataclass
class Client:
    """An API client on a fresh store, with a way to mint tokens."""

    http: httpx.AsyncClient
    settings: Settings

    def headers(self, *roles: Role) -> dict[str, str]:
        token = issue_token(
            Principal(username="wh1", roles=list(roles or [Role.warehouse])),
            secret=self.settings.secret_key,
            minutes=5,
        )
        return {"Authorization": f"Bearer {token}"}

    async def upload(self, files: dict[str, bytes], *, role: Role = Role.warehouse) -> httpx.Response:
        """POST the files as multipart fields named like the files."""
        parts = [(name, (name, body, "text/csv")) for name, body in files.items()]
        return await self.http.post("/api/imports", files=parts, headers=self.headers(role))


@pytest.fixture
async def client(store) -> AsyncIterator[Client]:
    settings = Settings(database_url=store.url, dev_endpoints=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield Client(http, settings)


async def test_warehouse_imports_the_files_and_a_second_upload_changes_nothing(client, store):
    first = await client.upload(valid_files())
    assert first.status_code == 200, first.text
    body = first.json()
    assert {f: c["created"] for f, c in body["files"].items()} == VALID_ROWS
    assert body["warnings"] == []
    before = await table_counts(store)

    again = await client.upload(valid_files())

    assert again.status_code == 200, again.text
    assert {f: c["unchanged"] for f, c in again.json()["files"].items()} == VALID_ROWS
    assert await table_counts(store) == before


@pytest.mark.parametrize("role", [Role.qa, Role.admin])
async def test_qa_and_admin_may_import_too(client, role):
    response = await client.upload({"locations.csv": valid_files()["locations.csv"]}, role=role)
    assert response.status_code == 200, response.text
    assert response.json()["files"]["locations.csv"]["created"] == 2


async def test_a_files_list_and_a_zip_are_accepted(client, store):
    parts = [("files", (f"C:\\exports\\{name}", body, "text/csv")) for name, body in valid_files().items()]
    response = await client.http.post("/api/imports", files=parts, headers=client.headers())
    assert response.status_code == 200, response.text
    assert response.json()["files"]["shipments.csv"]["created"] == 4
    before = await table_counts(store)

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for name, body in valid_files().items():
            z.writestr(f"export/{name}", body)
    response = await client.http.post(
        "/api/imports",
        files=[("files", ("export.zip", archive.getvalue(), "application/zip"))],
        headers=client.headers(),
    )
    assert response.status_code == 200, response.text
    assert {f: c["unchanged"] for f, c in response.json()["files"].items()} == VALID_ROWS
    assert await table_counts(store) == before


async def test_extra_columns_come_back_as_warnings(client):
    locations = b"code,name,kind,note\nWH-SH,Shanghai,warehouse,dock 3\n"
    response = await client.upload({"locations.csv": locations})
    assert response.status_code == 200, response.text
    assert response.json()["warnings"] == [
        {
            "file": "locations.csv",
            "line": 1,
            "column": "note",
            "reason": "column note is not part of locations.csv; ignored",
        }
    ]


async def test_errors_are_422_with_file_line_column_and_reason_and_change_nothing(client, store):
    before = await table_counts(store)
    files = valid_files(
        stock_csv=with_line("stock.csv", "QA-1,CATH-02,C7,-5"),
        products_csv=with_line("products.csv", "X-9,X,09506000134353,II,no,"),
    )
    response = await client.upload(files)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert [(d["file"], d["line"], d["column"]) for d in detail] == [
        ("products.csv", 5, "gtin"),
        ("stock.csv", 5, "quantity"),
    ]
    assert "check digit" in detail[0]["reason"] and "positive" in detail[1]["reason"]
    assert await table_counts(store) == before


async def test_a_file_that_is_not_utf8_is_422_naming_the_line(client, store):
    before = await table_counts(store)
    consignees = "code,name,kind\nC-1,Hôpital,hospital\n".encode("latin-1")
    response = await client.upload({"consignees.csv": consignees})
    assert response.status_code == 422
    [issue] = response.json()["detail"]
    assert (issue["file"], issue["line"], issue["column"]) == ("consignees.csv", 2, "name")
    assert "not valid UTF-8" in issue["reason"]
    assert await table_counts(store) == before


@pytest.mark.parametrize(
    ("parts", "file", "words"),
    [
        ([("orders.csv", ("orders.csv", b"a\n1\n", "text/csv"))], "orders.csv", "not a file of the import"),
        ([("files", ("orders.csv", b"a\n1\n", "text/csv"))], "orders.csv", "not a file of the import"),
        ([("files", ("data.zip", b"not a zip", "application/zip"))], "data.zip", "not a valid zip"),
        ([("products.csv", (None, b"just text"))], "products.csv", "expected a file upload"),
        ([], "", "no files"),
    ],
)
async def test_unknown_files_and_empty_uploads_are_422(client, store, parts, file, words):
    before = await table_counts(store)
    if parts:
        response = await client.http.post("/api/imports", files=parts, headers=client.headers())
    else:
        response = await client.http.post("/api/imports", headers=client.headers())
    assert response.status_code == 422, response.text
    assert any(d["file"] == file and words in d["reason"] for d in response.json()["detail"]), response.text
    assert await table_counts(store) == before


async def test_without_a_token_401_and_with_another_role_403(client, store):
    before = await table_counts(store)
    parts = [(name, (name, body, "text/csv")) for name, body in valid_files().items()]
    anonymous = await client.http.post("/api/imports", files=parts)
    assert anonymous.status_code == 401
    production = await client.upload(valid_files(), role=Role.production)
    assert production.status_code == 403
    assert "warehouse" in production.json()["detail"][0]["reason"]
    assert await table_counts(store) == before
