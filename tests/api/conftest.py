"""Fixtures the page tests share: the real app with a browser-like client (``pages``, defined in
``tests/api/test_pages.py``) and the real recall stack of the workflow tests."""

from tests.api.test_pages import pages  # noqa: F401
from tests.workflows.conftest import recall_stack, recall_store, time_env  # noqa: F401
