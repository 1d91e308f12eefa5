"""Provider names in the topic's spelling (``zoho-dataprep``) are read everywhere."""

from __future__ import annotations

import pytest

from pipestatus.cli import build_parser
from pipestatus.domain.states import Provider, provider_named


@pytest.mark.parametrize(
    ("name", "provider"),
    [("zoho_dataprep", Provider.zoho_dataprep), ("zoho-dataprep", Provider.zoho_dataprep),
     ("Zoho-DataPrep", Provider.zoho_dataprep), ("codat", Provider.codat),
     ("nuvo", Provider.nuvo), ("krenalis", Provider.krenalis)],
)  # fmt: skip
def test_both_spellings_name_the_provider(name: str, provider: Provider) -> None:
    assert provider_named(name) is provider


def test_an_unknown_name_says_which_are_known() -> None:
    with pytest.raises(ValueError, match="unknown provider 'acme' \\(known: zoho_dataprep"):
        provider_named("acme")


@pytest.mark.parametrize(
    "argv",
    [["runs", "show", "zoho-dataprep", "r1"], ["runs", "list", "--provider", "zoho-dataprep"],
     ["validate", "--provider", "zoho-dataprep", "file.json"]],
)  # fmt: skip
def test_every_cli_command_reads_the_topic_spelling(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).provider == "zoho_dataprep"


def test_the_cli_refuses_an_unknown_provider(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["runs", "show", "acme", "r1"])
    assert exited.value.code == 2
    assert "unknown provider 'acme'" in capsys.readouterr().err
