"""`python -m pipestatus.bench` runs the bench (until the CLI wires `pipestatus bench`)."""

import sys

from pipestatus.bench import main

raise SystemExit(main(sys.argv[1:]))
