"""Poll sources: required credentials per provider, Zoho templates, secrets never shown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pipestatus.adapters.poll_codat import until_reset
from pipestatus.cli import main
from pipestatus.errors import ConfigError
from pipestatus.settings import load_settings

SECRETS = ("api_TOPSECRET", "lic_TOPSECRET", "zoho_CLIENTSECRET", "1000.REFRESHSECRET", "pw0rd")
ZOHO = {
    "name": "zoho", "provider": "zoho_dataprep", "base_url": "https://www.zohoapis.eu",
    "accounts_url": "https://accounts.zoho.eu", "client_id": "1000.ID",
    "client_secret": SECRETS[2], "refresh_token": SECRETS[3],
    "job_url": "/dataprep/v1/jobs/{job_id}", "job_ids": ["2650000001230011"],
}  # fmt: skip
SOURCES = [
    {"name": "k", "provider": "krenalis", "base_url": "https://u:pw0rd@k.example.com",
     "api_key": SECRETS[0]},
    {"name": "n", "provider": "nuvo", "base_url": "https://n.example.com",
     "license_key": SECRETS[1]},
    ZOHO,
]  # fmt: skip


def test_pipestatus_config_never_prints_a_poll_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PIPESTATUS_POLL__SOURCES", json.dumps(SOURCES))
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert not [secret for secret in SECRETS if secret in out]
    shown = json.loads(out)["poll"]["sources"]
    assert shown[0]["base_url"] == "https://u:***@k.example.com"
    assert shown[2]["refresh_token"] == "**********"
    assert SECRETS[0] not in repr(load_settings(poll={"sources": SOURCES}))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"name": "k", "provider": "krenalis", "base_url": "http://k"}, "needs ['api_key']"),
        ({"name": "n", "provider": "nuvo", "base_url": "http://n"}, "needs ['license_key']"),
        ({"name": "c", "provider": "codat", "base_url": "http://c"}, "needs ['api_key']"),
        (ZOHO | {"job_url": None}, "needs ['job_url']"),
        (ZOHO | {"job_url": "/dataprep/v1/jobs"}, "job_url needs {job_id}"),
        (ZOHO | {"jobs_url": "/pipelines/{pipeline_id}/jobs"}, "jobs_url needs {pipeline_id}"),
        (ZOHO | {"job_ids": []}, "watch job_ids or list them"),
    ],
    ids=[
        "krenalis",
        "nuvo",
        "codat",
        "zoho-no-template",
        "zoho-no-placeholder",
        "zoho-list-without-field",
        "zoho-nothing-watched",
    ],
)
def test_a_source_missing_what_its_provider_needs_is_a_config_error(
    source: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(poll={"sources": [source]})


def test_poll_without_sources_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PIPESTATUS_POLL__SOURCES", raising=False)
    assert main(["poll", "--once"]) == 2
    assert "PIPESTATUS_POLL__SOURCES" in capsys.readouterr().err


def test_codat_quota_waits_until_its_reset_or_midnight_utc() -> None:
    now = datetime(2026, 7, 14, 23, 0, tzinfo=UTC)
    assert until_reset("2026-07-15T00:00:00Z", now) == 3600
    assert until_reset("not a time", now) == 3600
    assert until_reset("2026-07-14T22:00:00Z", now) == 1  # already past: try again soon
