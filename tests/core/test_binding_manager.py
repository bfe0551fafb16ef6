"""Binding discovery and instances: personal types, isolation of broken ones, recovery without restart."""

from __future__ import annotations

import asyncio
import math
import socket
from pathlib import Path

import pytest

from lollms_server.core.binding_manager import BindingManager, InstanceState
from lollms_server.core.errors import NotFoundError, UnavailableError
from lollms_server.core.resource_manager import ResourceManager
from tests.helpers import make_config, wait_until, write_binding_type, write_instance


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_manager(config) -> BindingManager:  # type: ignore[no-untyped-def]
    manager = BindingManager(config, ResourceManager())
    await manager.start()
    return manager


async def test_personal_binding_type_is_discovered_and_served(tmp_path: Path) -> None:
    port = free_port()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    config = make_config(tmp_path, bindings_map={"probe": "tcp_binding"})
    write_binding_type(config.paths.bindings_folder, dirname="folder name with spaces")
    write_instance(config, "probe", {"type": "tcp_binding", "port": port})
    try:
        manager = await start_manager(config)
        types = manager.list_types()
        assert types["tcp_binding"]["status"] == "ok" and types["tcp_binding"]["source"] == "personal"
        assert manager.instances["probe"].state is InstanceState.ACTIVE
        binding = await manager.get_binding("probe")
        assert await binding.generate("hello", {}, {}) == "hello"
        await manager.stop()
    finally:
        server.close()


BROKEN_TYPES = [
    ("bad_card", {"card": {"display_name": None}}, "display_name: required"),
    (
        "bad_schema",
        {"card": {"instance_schema": {"__version__": "1", "x": {"type": "complex", "help": "?"}}}},
        "not a valid ConfigGuard schema",
    ),
    ("bad_import", {"code": "import definitely_not_installed_module_xyz\n"}, "import failed: ModuleNotFoundError"),
    ("syntax_error", {"code": "def broken(:\n"}, "import failed: SyntaxError"),
    (
        "mismatch",
        {
            "code": "from lollms_server.core.bindings import Binding\n"
            "class X(Binding):\n    binding_type_name = 'other'\n"
        },
        "no concrete Binding subclass with binding_type_name == 'mismatch'",
    ),
]


@pytest.mark.parametrize(("type_name", "kwargs", "reason"), BROKEN_TYPES)
async def test_broken_binding_type_is_isolated(tmp_path: Path, type_name: str, kwargs: dict, reason: str) -> None:
    port = free_port()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    config = make_config(tmp_path, bindings_map={"good": "tcp_binding", "victim": type_name})
    write_binding_type(config.paths.bindings_folder)
    write_binding_type(config.paths.bindings_folder, type_name=type_name, **kwargs)
    write_instance(config, "good", {"port": port})
    write_instance(config, "victim", {})
    try:
        manager = await start_manager(config)
        info = manager.list_types()[type_name]
        assert info["status"] == "error" and reason in info["error"]
        assert manager.instances["victim"].state is InstanceState.ERROR
        assert type_name in manager.instances["victim"].reason
        assert manager.list_active_instances().keys() == {"good"}
        with pytest.raises(UnavailableError):
            await manager.get_binding("victim")
        await manager.stop()
    finally:
        server.close()


async def test_bad_instance_files_are_isolated_with_reasons(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        bindings_map={
            "missing_file": "tcp_binding",
            "bad_value": "tcp_binding",
            "wrong_type": "tcp_binding",
            "unknown_type": "nope_binding",
            "crashing": "crash_binding",
        },
    )
    write_binding_type(config.paths.bindings_folder)
    crash = (
        "from lollms_server.core.bindings import Binding\n"
        "class Crash(Binding):\n"
        "    binding_type_name = 'crash_binding'\n"
        "    def __init__(self, config, resource_manager):\n"
        "        raise RuntimeError('cannot start with key ' + config['api_key'])\n"
        + "".join(
            f"    async def {m}(self, *a, **k): pass\n"
            for m in ("list_available_models", "load_model", "unload_model", "generate", "get_model_info")
        )
        + "    def get_supported_input_modalities(self): return ['text']\n"
        "    def get_supported_output_modalities(self): return ['text']\n"
    )
    write_binding_type(config.paths.bindings_folder, type_name="crash_binding", code=crash)
    write_instance(config, "bad_value", {"port": "eighty"})
    write_instance(config, "wrong_type", {"type": "other_binding"})
    write_instance(config, "crashing", {"api_key": "sk-hidden-123"})

    manager = await start_manager(config)
    reasons = {name: instance.reason for name, instance in manager.instances.items()}
    await manager.stop()

    assert all(instance.state is InstanceState.ERROR for instance in manager.instances.values())
    assert "instance file not found" in reasons["missing_file"]
    assert "port = 'eighty'" in reasons["bad_value"]
    assert "bindings_map says 'tcp_binding'" in reasons["wrong_type"]
    assert "unknown binding type 'nope_binding'" in reasons["unknown_type"]
    assert "RuntimeError" in reasons["crashing"] and "sk-hidden-123" not in reasons["crashing"]
    with pytest.raises(NotFoundError):
        await manager.get_binding("not_configured")


async def test_instance_down_at_startup_recovers_without_restart(tmp_path: Path) -> None:
    port = free_port()
    config = make_config(tmp_path, bindings_map={"late": "tcp_binding"}, server={"binding_recheck_interval": 1.0})
    write_binding_type(config.paths.bindings_folder)
    write_instance(config, "late", {"port": port, "api_key": "sk-never-shown"})
    manager = await start_manager(config)
    try:
        instance = manager.instances["late"]
        assert instance.state is InstanceState.UNAVAILABLE and "unreachable" in instance.reason
        assert "late" not in manager.list_active_instances()

        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
        try:
            # The background re-check runs every second; a loaded machine may take longer.
            await wait_until(lambda: instance.state is InstanceState.ACTIVE)
            assert "late" in manager.list_active_instances()
        finally:
            server.close()
            await server.wait_closed()
    finally:
        await manager.stop()


async def test_requested_unavailable_instance_is_rechecked_on_demand(tmp_path: Path) -> None:
    port = free_port()
    config = make_config(tmp_path, bindings_map={"late": "tcp_binding"}, server={"binding_recheck_interval": 3600.0})
    write_binding_type(config.paths.bindings_folder)
    write_instance(config, "late", {"port": port})
    manager = await start_manager(config)
    with pytest.raises(UnavailableError, match="unreachable"):
        await manager.get_binding("late")
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        # As if the on-demand interval had passed (0.0 would not do: time.monotonic() counts from boot).
        manager.instances["late"].last_check = -math.inf
        assert await manager.get_binding("late") is manager.instances["late"].binding
    finally:
        server.close()
        await manager.stop()


async def test_missing_requirements_are_reported_not_installed(tmp_path: Path) -> None:
    config = make_config(tmp_path, bindings_map={"needy": "tcp_binding"})
    write_binding_type(
        config.paths.bindings_folder, card={"requirements": ["surely-absent-package-xyz>=1.0", "pyyaml"]}
    )
    write_instance(config, "needy", {})
    manager = await start_manager(config)
    await manager.stop()
    info = manager.list_types()["tcp_binding"]
    assert info["missing_requirements"] == ["surely-absent-package-xyz>=1.0"]
    assert "install-requirements tcp_binding" in manager.instances["needy"].reason


async def test_secrets_never_appear_in_listings(tmp_path: Path) -> None:
    config = make_config(tmp_path, bindings_map={"probe": "tcp_binding"})
    write_binding_type(config.paths.bindings_folder)
    write_instance(config, "probe", {"port": free_port(), "api_key": "sk-top-secret-999"})
    manager = await start_manager(config)
    await manager.stop()
    listed = repr(manager.list_types()) + repr(manager.list_instances()) + repr(manager.list_active_instances())
    assert "sk-top-secret-999" not in listed
    assert manager.list_instances()["probe"]["port"] > 0  # non-secret settings stay visible
    assert "api_key" not in manager.list_instances()["probe"]
