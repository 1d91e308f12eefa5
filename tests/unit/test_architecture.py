"""The functional core imports no I/O library (house style: functional core, imperative shell)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "pipestatus"
PURE = [
    *sorted((PACKAGE / "domain").rglob("*.py")),
    *sorted((PACKAGE / "providers").rglob("*.py")),
    *sorted((PACKAGE / "edge").rglob("*.py")),
    PACKAGE / "intake.py",
    PACKAGE / "errors.py",
]
BANNED = {
    "asyncio",
    "aiokafka",
    "asyncpg",
    "httpx",
    "aiohttp",
    "urllib",
    "http",
    "socket",
    "requests",
    "prometheus_client",
    "subprocess",
    "pipestatus.adapters",
    "pipestatus.app",
    "pipestatus.cli",
    "pipestatus.service",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_pure_core_exists() -> None:
    """The guard below checks real files, not an empty list."""
    assert len(PURE) >= 10


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_module_imports_no_io_library(path: Path) -> None:
    """A pure module imports neither asyncio nor a Kafka, PostgreSQL, HTTP or metrics library."""
    offending = {
        name
        for name in _imports(path)
        if any(name == banned or name.startswith(banned + ".") for banned in BANNED)
    }
    assert not offending, f"{path.name} imports {sorted(offending)}"


PRODUCT = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_product_never_imports_the_dev_package(path: Path) -> None:
    """The product package imports nothing from pipestatus_dev; only the reverse is allowed."""
    offending = {
        name
        for name in _imports(path)
        if name == "pipestatus_dev" or name.startswith("pipestatus_dev.")
    }
    assert not offending, f"{path.name} imports {sorted(offending)}"


def test_comments_cite_documents_users_have() -> None:
    """The product brief is not shipped: comments point at docs/ or the README instead."""
    sources = [p for p in (PACKAGE.parent).rglob("*") if p.suffix in {".py", ".sql"}]
    assert len(sources) > 50
    citing = [str(p.relative_to(PACKAGE.parent)) for p in sources if "DESIGN §" in p.read_text()]
    assert not citing, f"cite docs/ instead of the design brief: {citing}"
