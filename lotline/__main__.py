"""``python -m lotline``: the same as the ``lotline`` console script."""

from lotline.cli import app

app(prog_name="lotline")
