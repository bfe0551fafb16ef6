"""The shape of the code (issue 26): modules and lines per package, import arrows inside the core and how many
levels they stack, import circles, and the modules (and calls into them) one /api/v1/generate request passes
through, from the route to the binding and back.

    venv/bin/python bench/bench_structure.py

The request runs in-process (the app with its lifespan, httpx's ASGI transport) against a binding that answers
at once, so what is counted is the server's own path; a profile hook counts the calls into lollms_server.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections import Counter
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' helpers: a config with a scripted binding


def packages() -> None:
    counts: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for path in sorted((ROOT / "lollms_server").rglob("*.py")):
        package = str(path.parent.relative_to(ROOT)).replace("/", ".")
        counts[package] += 1
        lines[package] += len(path.read_text(encoding="utf-8").splitlines())
    print("1. modules and lines per package:")
    for package in sorted(counts):
        print(f"   {package}: {counts[package]} modules, {lines[package]:,} lines")


def core_imports() -> None:
    graph = grimp.build_graph("lollms_server", exclude_type_checking_imports=False)
    core = sorted(module for module in graph.modules if module.startswith("lollms_server.core."))
    arrows = {
        (importer, imported)
        for importer in core
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.startswith("lollms_server.core.")
    }
    depth: dict[str, int] = {}

    def level(module: str, seen: frozenset[str] = frozenset()) -> int:
        if module in depth:
            return depth[module]
        below = [imported for importer, imported in arrows if importer == module and imported not in seen]
        depth[module] = 1 + max((level(imported, seen | {module}) for imported in below), default=0)
        return depth[module]

    levels = max(level(module) for module in core)
    circles = {tuple(sorted(pair)) for pair in arrows if graph.chain_exists(importer=pair[1], imported=pair[0])}
    print(f"2. core: {len(core)} modules, {len(arrows)} import arrows between them, {levels} levels, "
          f"{len(circles)} pairs of modules in an import circle")  # fmt: skip


async def one_request() -> None:
    import httpx
    from asgi_lifespan import LifespanManager

    from lollms_server.app import create_app
    from tests.helpers import TEST_API_KEY, add_scripted_binding, make_config

    with tempfile.TemporaryDirectory() as folder:
        config = make_config(
            Path(folder), bindings_map={"scripted": "scripted_binding"}, defaults={"ttt_binding": "scripted"}
        )
        add_scripted_binding(config, default_model="model-a")
        app = create_app(config)
        body = {"input_data": [{"type": "text", "role": "user_prompt", "data": "hi"}], "parameters": {}}
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                headers = {"X-API-Key": TEST_API_KEY}
                await client.post("/api/v1/generate", json=body, headers=headers)  # warm: loads, caches
                calls: Counter[str] = Counter()

                def profile(frame, event, arg):  # type: ignore[no-untyped-def]
                    if event == "call":
                        module = frame.f_globals.get("__name__", "")
                        if module.startswith("lollms_server."):
                            calls[module] += 1

                sys.setprofile(profile)
                try:
                    response = await client.post("/api/v1/generate", json=body, headers=headers)
                finally:
                    sys.setprofile(None)
    print(f"3. one /api/v1/generate ({response.status_code}): {len(calls)} modules, {sum(calls.values())} calls "
          "into lollms_server")  # fmt: skip
    for module, count in calls.most_common():
        print(f"   {module}: {count}")


if __name__ == "__main__":
    packages()
    core_imports()
    asyncio.run(one_request())
