"""``python -m tsmetrics.check_simulation``: run the experiments, print the Markdown report."""

from tsmetrics.check_simulation.cli import main

raise SystemExit(main())
