"""`python -m llenergymeasure` is `llem` (how a compute node starts it from a shared venv)."""

from llenergymeasure.cli.entry import main

main()
