"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse

from pipestatus.domain.states import provider_named

#: Shown in --help: both spellings are read.
PROVIDER_HELP = "zoho_dataprep (or zoho-dataprep, the topic's spelling), krenalis, codat, nuvo"


def provider_name(text: str) -> str:
    """A provider in its own spelling or its topic's (``zoho-dataprep``), as its value."""
    try:
        return provider_named(text).value
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
