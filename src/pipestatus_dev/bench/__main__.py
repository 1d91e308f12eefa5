"""`python -m pipestatus_dev.bench` runs the bench (until the CLI wires `pipestatus bench`)."""

import sys

from pipestatus_dev.bench import main

raise SystemExit(main(sys.argv[1:]))
