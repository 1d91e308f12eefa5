"""What one bench run shares between its phases, and what it must clean up at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pipestatus_dev.bench.child import Child
from pipestatus_dev.bench.options import Options
from pipestatus_dev.bench.progress import Progress
from pipestatus_dev.bench.services import Services
from pipestatus_dev.provision.databases import create_database, drop_database_async


@dataclass
class Context:
    options: Options
    services: Services
    progress: Progress
    workdir: Path
    token: str
    children: list[Child] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)

    def spawn(self, kind: str, argv: list[str], env: dict[str, str], label: str) -> Child:
        child = Child(argv, env, self.workdir / f"{label}.log")
        self.children.append(child)
        return child

    async def database(self, label: str) -> tuple[str, str]:
        name = f"bench_{self.token}_{label}"
        url = await create_database(self.services.admin_url, name=name)
        self.databases.append(name)
        return name, url

    async def drop(self, name: str) -> None:
        await drop_database_async(self.services.admin_url, name)
        if name in self.databases:
            self.databases.remove(name)
