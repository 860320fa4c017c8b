"""Pages of a long list: which rows to read, and the links to the pages before and after."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import Request


def url_with(request: Request, fragment: str = "", **changes: object) -> str:
    """This page's path and query with some parameters changed (``None`` removes one)."""
    query = {k: v for k, v in request.query_params.items() if k not in changes}
    query.update({k: str(v) for k, v in changes.items() if v is not None and v != ""})
    qs = urlencode(sorted(query.items()))
    return f"{request.url.path}{'?' + qs if qs else ''}{'#' + fragment if fragment else ''}"


@dataclass
class Pager:
    """Rows ``first``–``last`` of ``total``, and the links to the neighbouring pages (None at the ends)."""

    page: int
    size: int
    total: int
    prev_url: str | None
    next_url: str | None

    @property
    def offset(self) -> int:
        """Rows to skip."""
        return (self.page - 1) * self.size

    @property
    def first(self) -> int:
        """The first row shown (1-based; 0 when there are none)."""
        return min(self.offset + 1, self.total)

    @property
    def last(self) -> int:
        """The last row shown."""
        return min(self.offset + self.size, self.total)

    @property
    def pages(self) -> int:
        """How many pages there are."""
        return max((self.total + self.size - 1) // self.size, 1)


def pager(request: Request, *, param: str, page: int, size: int, total: int, fragment: str = "") -> Pager:
    """The pager of a list whose page number is the query parameter ``param``."""
    pages = max((total + size - 1) // size, 1)
    page = max(page, 1)
    return Pager(
        page=page,
        size=size,
        total=total,
        prev_url=url_with(request, fragment, **{param: page - 1 if page > 2 else None}) if page > 1 else None,
        next_url=url_with(request, fragment, **{param: page + 1}) if page < pages else None,
    )
