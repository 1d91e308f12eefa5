"""The edge's pure parts: Standard Webhooks signatures and the Kafka record a delivery becomes.

No I/O here (tests/unit/test_architecture.py): the HTTP service that uses them lives in
``pipestatus.adapters.ingress_http`` and its composition root in ``pipestatus.ingress``.
"""
