"""`python -m llenergymeasure` is `llem` (how a compute node starts it from a shared venv)."""

from llenergymeasure.cli.app import main

main()
