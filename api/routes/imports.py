"""``POST /api/imports``: load the CSV files of the import contract, all or nothing (admin, qa, warehouse)."""

from __future__ import annotations

import zipfile
from pathlib import PureWindowsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from api.deps import SessionDep, require_roles
from api.security import Principal
from domain.csvfiles import CSV_COLUMNS, describe
from domain.enums import Role
from domain.imports import ImportIssue, ImportRejected, ImportResult, Source, import_csv

router = APIRouter(prefix="/api/imports", tags=["imports"])

IMPORTERS = require_roles(Role.admin, Role.qa, Role.warehouse)
# A zip may expand to at most this much (a guard against zip bombs); plain uploads are spooled to disk.
MAX_UNZIPPED_BYTES = 2 * 1024**3

_ISSUE_SCHEMA = {
    "type": "object",
    "properties": {
        "file": {"type": "string"},
        "line": {"type": "integer"},
        "column": {"type": "string", "nullable": True},
        "reason": {"type": "string"},
    },
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        **{name: {"type": "string", "format": "binary"} for name in CSV_COLUMNS},
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "files named by their file names, or one .zip holding them",
                        },
                    },
                }
            }
        },
    }
}


class _Refused(Exception):
    def __init__(self, issues: list[ImportIssue]) -> None:
        self.issues = issues


def _unzip(upload: UploadFile, name: str, archives: list[zipfile.ZipFile]) -> dict[str, Source]:
    try:
        archive = zipfile.ZipFile(upload.file)
    except zipfile.BadZipFile:
        raise _Refused([ImportIssue(file=name, line=0, reason="not a valid zip archive")]) from None
    archives.append(archive)
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
        raise _Refused([ImportIssue(file=name, line=0, reason="the archive expands to more than 2 GiB")])
    sources: dict[str, Source] = {}
    for member in members:
        sources[member.filename.rsplit("/", 1)[-1]] = lambda m=member: archive.open(m)
    return sources


async def _sources(request: Request, archives: list[zipfile.ZipFile]) -> dict[str, Source]:
    """File name -> content, from multipart fields named like the files, a ``files`` list, or a zip."""
    form = await request.form()
    sources: dict[str, Source] = {}
    issues: list[ImportIssue] = []
    for field, value in form.multi_items():
        if not isinstance(value, UploadFile):
            issues.append(ImportIssue(file=field, line=0, reason="expected a file upload, got a text field"))
            continue
        # Browsers may send a full Windows path as the file name.
        uploaded = PureWindowsPath(value.filename or "").name
        name = uploaded if field == "files" else field
        is_zip = name.lower().endswith(".zip") or uploaded.lower().endswith(".zip")
        found = _unzip(value, uploaded or name, archives) if is_zip else {name: value.file}
        for file, source in found.items():
            if file in sources:
                issues.append(ImportIssue(file=file, line=0, reason="uploaded more than once"))
            sources[file] = source
    if not sources and not issues:
        issues.append(
            ImportIssue(
                file="",
                line=0,
                reason="no files: upload multipart fields named like the files (products.csv, ...), "
                "a `files` list, or one .zip",
            )
        )
    if issues:
        raise _Refused(issues)
    return sources


@router.post(
    "",
    response_model=ImportResult,
    summary="Import the CSV files of the import contract in one transaction",
    description="All or nothing; importing the same rows again changes nothing; extra columns are "
    "ignored with a warning. On any error nothing is changed and the answer is 422 with "
    "`detail[]` = `{file, line, column, reason}`, every error found.\n\nFiles ([optional]):\n\n"
    + "\n".join(f"- `{line}`" for line in describe().splitlines()),
    responses={
        422: {
            "description": "errors in the files; nothing was changed",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"detail": {"type": "array", "items": _ISSUE_SCHEMA}},
                    }
                }
            },
        },
        409: {"description": "the store changed while the import ran; nothing was changed: run it again"},
    },
    openapi_extra=_BODY,
)
async def post_import(
    request: Request,
    session: SessionDep,
    user: Annotated[Principal, Depends(IMPORTERS)],
) -> Any:
    """Check every file, then write them all in one transaction; 422 lists every error and changes nothing."""
    archives: list[zipfile.ZipFile] = []
    try:
        sources = await _sources(request, archives)
        async with session.begin():
            return await import_csv(session, files=sources, user=user.username)
    except (_Refused, ImportRejected) as exc:
        return JSONResponse(status_code=422, content={"detail": [i.model_dump() for i in exc.issues]})
    finally:
        for archive in archives:
            archive.close()
