"""aiokafka errors are mapped by aiokafka's own verdict: retried, or the worker stops."""

from __future__ import annotations

import pytest
from aiokafka.errors import (
    AuthenticationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    NotCoordinatorForGroupError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)

from pipestatus.adapters.kafka import map_kafka_errors
from pipestatus.cli import main
from pipestatus.errors import BrokerError, BrokerRefusedError, InfrastructureError

RETRIABLE: list[KafkaError] = [
    KafkaConnectionError("connection reset"),
    NodeNotReadyError("node 1"),
    NotCoordinatorForGroupError(),
    RequestTimedOutError(),
    KafkaTimeoutError(),  # the class says False, but a timeout is worth another try
]
REFUSED: list[KafkaError] = [
    TopicAuthorizationFailedError(),
    GroupAuthorizationFailedError(),
    AuthenticationFailedError("bad credentials"),
    UnsupportedSaslMechanismError(),
]


@pytest.mark.parametrize("error", RETRIABLE, ids=lambda e: type(e).__name__)
def test_retriable_kafka_errors_become_broker_errors(error: KafkaError) -> None:
    with pytest.raises(BrokerError) as caught, map_kafka_errors():
        raise error
    assert caught.value.retriable is True
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("error", REFUSED, ids=lambda e: type(e).__name__)
def test_non_retriable_kafka_errors_stop_instead_of_retrying(error: KafkaError) -> None:
    assert type(error).retriable is False  # aiokafka's own verdict, the premise of the mapping
    with pytest.raises(BrokerRefusedError) as caught, map_kafka_errors():
        raise error
    refused = caught.value
    assert refused.retriable is False
    assert not isinstance(refused, InfrastructureError)  # the worker loop retries those
    assert refused.__cause__ is error
    assert type(error).__name__ in str(refused)


def test_a_refused_broker_exits_3_and_says_what_to_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pipestatus.cli.operate as operate

    async def refused_worker(*_args: object, **_kwargs: object) -> None:
        with map_kafka_errors():
            raise TopicAuthorizationFailedError()

    monkeypatch.setattr(operate, "run_worker", refused_worker)
    monkeypatch.setattr(operate, "tune_garbage_collector", lambda: None)
    assert main(["worker"]) == 3
    err = capsys.readouterr().err
    assert "TopicAuthorizationFailedError" in err
    assert "ACLs" in err
    assert "PIPESTATUS_KAFKA__SASL_" in err
