"""`python -m pipestatus` runs the CLI."""

from pipestatus.cli import main

raise SystemExit(main())
