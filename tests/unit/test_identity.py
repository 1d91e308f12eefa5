"""The event identity digest: stored identities must never change across versions."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import given, settings, strategies as st

from pipestatus.domain.identity import canonical_json, event_identity, reference_canonical_json

JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(JSON_VALUES)
def test_fast_canonical_json_is_byte_identical_to_the_definition(document: Any) -> None:
    """orjson's output is used only where it equals json.dumps(sort_keys) byte for byte."""
    assert canonical_json(document) == reference_canonical_json(document)


def test_float_spellings_orjson_writes_differently_fall_back() -> None:
    """Exponents and tiny decimals are where the two encoders differ; the definition wins."""
    document = {"a": 1.5e-7, "b": 1e-05, "c": [2.5e20], "d": 2**70}
    assert (
        canonical_json(document)
        == b'{"a":1.5e-07,"b":1e-05,"c":[2.5e+20],"d":' + str(2**70).encode() + b"}"
    )


def test_digest_is_stable_across_versions() -> None:
    """A pinned identity: the digest of provider + newline + canonical JSON, as first shipped."""
    document = {"status": "Fetching", "id": "x", "progress": 10, "name": "é"}
    canonical = '{"id":"x","name":"é","progress":10,"status":"Fetching"}'
    expected = hashlib.sha256(f"codat\n{canonical}".encode()).hexdigest()
    assert event_identity(provider="codat", document=document) == f"sha256:{expected}"
    assert json.loads(canonical) == document


def test_a_bare_tiny_float_falls_back_too() -> None:
    """Found by the property test: a top-level 1e-05 has no ``:``, ``,`` or ``[`` before it."""
    assert canonical_json(1e-05) == b"1e-05"
    assert canonical_json(-1e-05) == b"-1e-05"
