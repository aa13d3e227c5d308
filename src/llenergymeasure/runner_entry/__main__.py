"""`python -m llenergymeasure.runner_entry WORKDIR`."""

from llenergymeasure.runner_entry.main import main

raise SystemExit(main())
