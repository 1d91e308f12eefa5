"""pipestatus's dev tooling: embedded services, the simulated provider world, demo, bench.

Installed by the ``dev`` extra from a checkout, never shipped in the product wheel. It
imports the product package; the product never imports it (``tests/unit/test_architecture.py``).
"""
