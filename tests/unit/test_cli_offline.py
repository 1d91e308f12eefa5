"""``pipestatus validate`` and ``pipestatus schemas export``: offline, no services."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipestatus.cli import main
from pipestatus.providers import parse_record
from pipestatus.providers.catalog import readme_block
from pipestatus.schemas import all_schemas, render

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "tests" / "fixtures").glob("*/*.json"))
#: Fixtures that document a rejection rather than a run status.
REJECTED = {
    "api_error.json": "provider_api_error",
    "connection_disconnected.json": "unknown_payload_kind",
}
REQUIRED_KEYS = {
    "provider", "run_id", "pipeline_id", "attempt", "state", "provider_status",
    "error_category", "retryable", "warnings", "occurred_at",
}  # fmt: skip


def test_there_are_fixtures_for_every_provider() -> None:
    """The fixture set covers all four providers."""
    assert {p.parent.name for p in FIXTURES} == {"zoho_dataprep", "krenalis", "codat", "nuvo"}


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_validate_prints_one_line_per_observation(path: Path, capsys) -> None:
    """Each fixture validates offline; each output line is one normalized observation."""
    code = main(["validate", str(path), "--provider", path.parent.name])
    out, err = capsys.readouterr()
    if path.name in REJECTED:
        assert code == 1
        assert err.startswith(REJECTED[path.name])
        assert out == ""
        return
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    expected = parse_record(path.read_bytes()).observations
    assert len(lines) == len(expected) >= 1
    for line, observation in zip(lines, expected, strict=True):
        assert line.keys() >= REQUIRED_KEYS
        assert line["state"] == observation.state.value
        assert line["run_id"] == observation.run_id
        assert line["provider"] == path.parent.name


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x00\x01 not json", "not_json"),
        (b'{"pipelinerun": {"id": "1"', "not_json"),
        (b'{"unrelated": true}', "unknown_payload_kind"),
        (
            b'{"id": "r", "pipeline": "p", "status": "QUEUED", "trigger_type": "MANUAL"}',
            "unmapped_status",
        ),
        (
            b'{"id": 12, "pipeline": 3, "startTime": "yesterday", "endTime": null,'
            b' "passed": [0,0,0,0,0,0], "failed": [0,0,0,0,0,0], "error": ""}',
            "invalid_payload at startTime",
        ),
    ],
    ids=["binary", "truncated", "unknown-kind", "unmapped-status", "wrong-type"],
)
def test_validate_rejects_with_reason_and_path(
    payload: bytes, reason: str, tmp_path, capsys
) -> None:
    """A rejected payload exits 1 with one line: reason code, field path, what was wrong."""
    target = tmp_path / "payload.json"
    target.write_bytes(payload)
    assert main(["validate", str(target)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(reason)
    assert len(err.strip().splitlines()) == 1


def test_validate_reads_standard_input_through_the_console_script() -> None:
    """`pipestatus validate -` works as an installed command, reading stdin."""
    payload = (ROOT / "tests" / "fixtures" / "codat" / "read_completed.json").read_bytes()
    script = Path(sys.executable).with_name("pipestatus")
    done = subprocess.run(
        [str(script), "validate", "-"], input=payload, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    states = [json.loads(line)["state"] for line in done.stdout.splitlines()]
    assert len(states) == len(json.loads(payload)["payload"]["dataTypes"])


def test_committed_schemas_match_the_models() -> None:
    """`schemas/` is exactly what `pipestatus schemas export` writes (drift test)."""
    committed = {p.stem: p.read_text() for p in (ROOT / "schemas").glob("*.json")}
    generated = {name: render(schema) for name, schema in all_schemas().items()}
    assert committed.keys() == generated.keys()
    for name, text in generated.items():
        assert committed[name] == text, (
            f"schemas/{name}.json drifted: run pipestatus schemas export schemas"
        )


def test_schemas_export_reproduces_the_directory(tmp_path) -> None:
    """Exporting into an empty directory reproduces the committed files byte for byte."""
    assert main(["schemas", "export", str(tmp_path)]) == 0
    for path in (ROOT / "schemas").glob("*.json"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def test_readme_mapping_table_is_generated_from_the_code() -> None:
    """The README's provider/status table equals the one rendered from the status tables."""
    assert readme_block() in (ROOT / "README.md").read_text()


def test_bench_subcommand_takes_the_bench_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`pipestatus bench --events N …` reaches the bench's own parser (argparse's REMAINDER
    used to refuse any option)."""
    assert main(["bench", "--events", "10", "--help"]) == 0
    assert "--latency-seconds" in capsys.readouterr().out
    assert main(["bench", "--no-such-option"]) == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
