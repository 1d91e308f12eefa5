"""The pure core: run states, normalized observations and the convergence rule.

Nothing in this package does I/O or imports asyncio, Kafka, PostgreSQL, HTTP or metrics
libraries (enforced by ``tests/unit/test_architecture.py``).
"""
