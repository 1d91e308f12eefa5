"""The product wheel holds only the product, and its CLI lists only production commands."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         str(ROOT), "-w", str(out)],
        check=True,
    )  # fmt: skip
    (built,) = out.glob("pipestatus-*.whl")
    return built


def test_wheel_holds_no_dev_tooling(wheel: Path) -> None:
    """The wheel contains the pipestatus package and nothing of pipestatus_dev."""
    names = zipfile.ZipFile(wheel).namelist()
    assert any(name.startswith("pipestatus/") for name in names)
    assert not [name for name in names if name.startswith("pipestatus_dev")]


def test_wheel_cli_lists_only_production_commands(wheel: Path, tmp_path: Path) -> None:
    """From the unpacked wheel alone, --help omits demo/bench and `demo` says what to install."""
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    script = textwrap.dedent(
        f"""
        import sys
        src = {str(ROOT / "src")!r}
        sys.path[:] = [{str(unpacked)!r}] + [p for p in sys.path if p and p != src
                                              and "__editable__" not in p]
        for name in [m for m in sys.modules if m.startswith("pipestatus")]:
            del sys.modules[name]
        import importlib.util
        assert importlib.util.find_spec("pipestatus_dev") is None, "dev package visible"
        from pipestatus.cli import main
        code = main(["demo"])
        print("DEMO-EXIT", code)
        main(["--help"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert "DEMO-EXIT 2" in done.stdout, done.stdout + done.stderr
    assert "pip install" in done.stderr
    assert "bash scripts/demo" in done.stderr
    commands = done.stdout.split("positional arguments:")[1]
    assert "worker" in commands
    assert "demo" not in commands
    assert "bench" not in commands
