"""`python -m llenergymeasure.experiment WORKDIR`."""

from llenergymeasure.experiment.main import main

raise SystemExit(main())
