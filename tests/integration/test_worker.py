"""The worker end to end against a real Kafka-protocol broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipestatus.app import run_worker
from pipestatus.cli import main
from pipestatus.domain.states import Provider
from tests.integration.db_tools import fetch, snapshot
from tests.integration.kafka_tools import (
    Message,
    create_topics,
    produce,
    topic_for,
    unique_topics,
    worker_settings,
)

pytestmark = [pytest.mark.services]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
T0 = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)


def fixture(provider: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / provider / f"{name}.json").read_text())
    return document


def encode(document: dict[str, Any]) -> Message:
    return Message(json.dumps(document).encode())


def zoho(name: str, run_id: str) -> Message:
    document = fixture("zoho_dataprep", name)
    document["pipelinerun"]["id"] = run_id
    return encode(document)


def codat_pull(run_id: str, status: str, minute: int, company: str = "c0") -> dict[str, Any]:
    document = fixture("codat", "pull_operation")
    ended = status in {"Complete", "FetchError", "Cancelled", "NotSupported"}
    document.update(
        id=_uuid(run_id),
        companyId=_uuid(company),
        status=status,
        requested=(T0 + timedelta(minutes=minute)).isoformat(),
        completed=(T0 + timedelta(minutes=minute)).isoformat() if ended else None,
        isCompleted=status == "Complete",
        isErrored=status == "FetchError",
    )
    if document["completed"] is None:
        del document["completed"]
    return document


def _uuid(seed: str) -> str:
    """Codat ids are UUIDs: a stable one per readable test name."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, seed))


async def drain(services, database_url, topics, **kwargs) -> None:
    settings = worker_settings(services.kafka_bootstrap, database_url, topics, **kwargs)
    summary = await run_worker(settings, until_idle=True)
    assert summary.records > 0


async def cli_json(monkeypatch, database_url: str, *argv: str, capsys) -> list[Any]:
    """Runs the real CLI (it owns its event loop, so in a thread) and parses its JSON lines."""
    monkeypatch.setenv("PIPESTATUS_DATABASE__URL", database_url)
    assert await asyncio.to_thread(main, [*argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


class TestEachProviderEndToEnd:
    async def test_lifecycles_of_all_four_providers(
        self, services, database_url, monkeypatch, capsys
    ) -> None:
        """Produced payloads of every provider become runs with their transitions."""
        topics = unique_topics()
        await create_topics(services.kafka_bootstrap, topics)
        zoho_run = "2650000009990001"
        zoho_life = ["created", "running_at_extract", "running_at_transform", "failed_at_load"]
        zoho_life += ["rerun_running_re_run_count", "rerun_succeeded"]
        await produce(
            services.kafka_bootstrap,
            topic_for(topics, Provider.zoho_dataprep),
            [zoho(name, zoho_run) for name in zoho_life],
        )
        running = fixture("krenalis", "running")
        ended = fixture("krenalis", "succeeded_with_warnings") | {"id": running["id"]}
        await produce(
            services.kafka_bootstrap,
            topic_for(topics, Provider.krenalis),
            [encode(running), encode(ended)],
        )
        codat_life = ["Queued", "Fetching", "Mapping", "Complete"]
        await produce(
            services.kafka_bootstrap,
            topic_for(topics, Provider.codat),
            [encode(codat_pull("9d1c", s, i)) for i, s in enumerate(codat_life)]
            + [encode(fixture("codat", "read_completed"))],
        )
        nuvo_life = ["failed", "fixed_after_failure"]
        await produce(
            services.kafka_bootstrap,
            topic_for(topics, Provider.nuvo),
            [encode(fixture("nuvo", name)) for name in nuvo_life]
            + [encode(fixture("nuvo", "create_response"))],
        )

        await drain(services, database_url, topics)

        async def show(provider: str, run_id: str) -> dict[str, Any]:
            shown: dict[str, Any]
            [shown] = await cli_json(
                monkeypatch, database_url, "runs", "show", provider, run_id, capsys=capsys
            )
            return shown

        zoho_shown = await show("zoho_dataprep", zoho_run)
        assert zoho_shown["run"]["state"] == "succeeded"
        assert zoho_shown["run"]["attempt"] == 3
        moves = [(t["from_state"], t["to_state"], t["attempt"]) for t in zoho_shown["transitions"]]
        assert moves == [
            (None, "queued", 1),
            ("queued", "running", 1),
            ("running", "running", 1),
            ("running", "failed", 1),
            ("failed", "running", 2),
            ("running", "succeeded", 3),
        ]
        assert {"occurred_at", "recorded_at", "provider_status"} <= zoho_shown["transitions"][
            0
        ].keys()
        assert zoho_shown["transitions"][3]["provider_status"] == "-1"

        krenalis_shown = await show("krenalis", running["id"])
        assert krenalis_shown["run"]["state"] == "succeeded"
        assert krenalis_shown["run"]["warnings"]
        assert [t["to_state"] for t in krenalis_shown["transitions"]] == ["running", "succeeded"]

        codat_shown = await show("codat", _uuid("9d1c"))
        assert [t["to_phase"] for t in codat_shown["transitions"]] == [
            "Queued", "Fetching", "Mapping", None,
        ]  # fmt: skip
        assert codat_shown["run"]["state"] == "succeeded"

        nuvo_shown = await show("nuvo", "6690f1c2a7b4e90012ab34ff")
        assert [(t["to_state"], t["attempt"]) for t in nuvo_shown["transitions"]] == [
            ("failed", 1),
            ("succeeded", 2),
        ]

        listed = await cli_json(monkeypatch, database_url, "runs", "list", capsys=capsys)
        fanned_out = len(fixture("codat", "read_completed")["payload"]["dataTypes"])
        created = len(fixture("nuvo", "create_response")["data"])
        assert len(listed) == 4 + fanned_out + created
        failed_only = await cli_json(
            monkeypatch, database_url, "runs", "list", "--state", "failed", capsys=capsys
        )
        assert all(run["state"] == "failed" for run in failed_only)


class TestConvergence:
    async def test_triple_shuffled_delivery_converges_to_the_ordered_state(
        self, services, database_url, second_database_url
    ) -> None:
        """Every event three times, shuffled over 3 partitions, ends as one ordered delivery."""
        lives = {
            f"run-{n:03d}": ["Queued", "Fetching", "Mapping", "Validating", "Processing",
                              random.Random(n).choice(["Complete", "FetchError", "Cancelled"])]
            for n in range(40)
        }  # fmt: skip
        events = [
            codat_pull(run, status, minute, company=f"c{int(run[-3:]) % 5}")
            for run, life in lives.items()
            for minute, status in enumerate(life)
        ]
        ordered_topics, shuffled_topics = unique_topics(), unique_topics()
        await create_topics(services.kafka_bootstrap, ordered_topics)
        await create_topics(services.kafka_bootstrap, shuffled_topics, partitions=3)
        await produce(
            services.kafka_bootstrap,
            topic_for(ordered_topics, Provider.codat),
            [encode(e) for e in events],
        )
        shuffled = events * 3
        random.Random(7).shuffle(shuffled)
        await produce(
            services.kafka_bootstrap,
            topic_for(shuffled_topics, Provider.codat),
            [Message(json.dumps(e).encode(), partition=i % 3) for i, e in enumerate(shuffled)],
        )

        await drain(services, database_url, ordered_topics)
        await drain(services, second_database_url, shuffled_topics)

        ordered, scrambled = await snapshot(database_url), await snapshot(second_database_url)
        assert scrambled["runs"] == ordered["runs"]
        assert len(ordered["runs"]) == len(lives)
        assert scrambled["events"] == ordered["events"] == len(events)
        steps = [
            (t["run_id"], t["attempt"], t["to_state"], t["to_phase"])
            for t in scrambled["transitions"]
        ]
        assert len(steps) == len(set(steps)), "a transition was written twice"
        assert set(steps) <= {
            (t["run_id"], t["attempt"], t["to_state"], t["to_phase"])
            for t in ordered["transitions"]
        }
        counts = await fetch(
            second_database_url,
            "SELECT count(*) AS n FROM run_transitions"
            " GROUP BY provider, run_id, event_id HAVING count(*) > 1",
        )
        assert counts == []


class TestBadInput:
    async def test_bad_records_are_dead_lettered_and_the_rest_applied(
        self, services, database_url, monkeypatch, capsys
    ) -> None:
        """Invalid records land in dead letters with reasons; records after them still apply."""
        topics = unique_topics()
        await create_topics(services.kafka_bootstrap, topics)
        topic = topic_for(topics, Provider.codat)
        good_before = codat_pull("good-1", "Complete", 1)
        good_after = codat_pull("good-2", "FetchError", 2)
        unmapped = codat_pull("bad-3", "Paused", 3)
        wrong_type = codat_pull("bad-4", "Queued", 4) | {"progress": "half"}
        batch = [
            encode(good_before),
            Message(b"\x89PNG\r\n\x1a\n not json"),
            Message(b'{"truncated": '),
            Message(b'{"hello": "world"}'),
            encode(unmapped),
            encode(wrong_type),
            encode(good_after),
        ]
        await produce(services.kafka_bootstrap, topic, batch)

        await drain(services, database_url, topics, group="bad-input")

        letters = await fetch(
            database_url,
            "SELECT source_offset, reason, field_path, raw_value"
            " FROM dead_letters ORDER BY source_offset",
        )
        assert [(r["source_offset"], r["reason"]) for r in letters] == [
            (1, "not_json"),
            (2, "not_json"),
            (3, "unknown_payload_kind"),
            (4, "unmapped_status"),
            (5, "invalid_payload"),
        ]
        assert letters[0]["raw_value"] == batch[1].value
        assert letters[3]["field_path"] == "status"
        assert letters[4]["field_path"] == "progress"
        runs = await fetch(database_url, "SELECT run_id, state FROM runs ORDER BY run_id")
        assert sorted((r["run_id"], r["state"]) for r in runs) == sorted(
            [(_uuid("good-1"), "succeeded"), (_uuid("good-2"), "failed")]
        )
        [offset] = await fetch(
            database_url, "SELECT next_offset FROM consumer_offsets WHERE group_id = 'bad-input'"
        )
        assert offset["next_offset"] == len(batch)

        listed = await cli_json(monkeypatch, database_url, "dead-letters", "list", capsys=capsys)
        assert {letter["reason"] for letter in listed} == {
            "not_json", "unknown_payload_kind", "unmapped_status", "invalid_payload",
        }  # fmt: skip


class TestReplay:
    async def test_replay_applies_what_passes_after_a_mapping_fix(
        self, services, database_url, monkeypatch, capsys
    ) -> None:
        """A dead letter that passes once the mapping knows its status is applied by replay."""
        from pipestatus.domain.observation import StatusRule
        from pipestatus.domain.states import RunState
        from pipestatus.providers import codat

        topics = unique_topics()
        await create_topics(services.kafka_bootstrap, topics)
        await produce(
            services.kafka_bootstrap,
            topic_for(topics, Provider.codat),
            [
                encode(codat_pull("replayed", "Paused", 1)),
                encode(codat_pull("other", "Mapping", 1)),
            ],
        )
        await drain(services, database_url, topics)
        [letter] = await fetch(database_url, "SELECT id, reason FROM dead_letters")
        assert letter["reason"] == "unmapped_status"

        monkeypatch.setitem(
            codat.STATUS_TABLE, "Paused", StatusRule(RunState.running, phase="Paused", phase_rank=1)
        )
        monkeypatch.setenv(
            "PIPESTATUS_KAFKA__TOPICS", json.dumps({t: p.value for t, p in topics.items()})
        )
        [report] = await cli_json(
            monkeypatch, database_url, "dead-letters", "replay", capsys=capsys
        )
        assert report == {"applied": 1, "duplicate": 0, "stale": 0, "still_failing": 0}
        [run] = await fetch(
            database_url, "SELECT state, phase FROM runs WHERE run_id = $1", _uuid("replayed")
        )
        assert (run["state"], run["phase"]) == ("running", "Paused")
        [marked] = await fetch(database_url, "SELECT replayed_at, replay_result FROM dead_letters")
        assert marked["replayed_at"] is not None
        assert marked["replay_result"] == "applied"
        [again] = await cli_json(monkeypatch, database_url, "dead-letters", "replay", capsys=capsys)
        assert again == {"applied": 0, "duplicate": 0, "stale": 0, "still_failing": 0}
