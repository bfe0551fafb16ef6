"""Who may call and how much, wired into the app: the named keys (reloaded when their file changes, or on
demand), the per-key limits store (Redis when configured, else memory), the usage accounting and the metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI

from lollms_server.api.auth import PROTECTED_PREFIXES, ApiKeyMiddleware
from lollms_server.api.metrics import METRICS_PATH
from lollms_server.api.metrics import router as metrics_router
from lollms_server.api.quota import Limiter
from lollms_server.core.api_keys import ApiKeyVerifier, KeyFile
from lollms_server.core.config import ServerConfig, load_main_config
from lollms_server.core.errors import ConfigError
from lollms_server.core.metrics import ServerMetrics
from lollms_server.core.quotas import (
    LimitStore,
    MemoryLimitStore,
    StoreHealth,
    StoreUnavailableError,
    TokenBudget,
    UsageAccounting,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

KEYS_CHECK_SECONDS = 2.0  # how often the key file's change time is looked at (replicas pick up new keys)


def keys_path(config: ServerConfig) -> Path:
    path = Path(os.path.expanduser(config.section("security")["keys_file"]))
    return path if path.is_absolute() else config.paths.config_dir / path


def build_limit_store(config: ServerConfig) -> LimitStore:
    shared = config.shared_state
    if not shared.redis_url:
        return MemoryLimitStore(lease_seconds=shared.lease_seconds)
    from lollms_server.core.redis_state import RedisLimitStore

    return RedisLimitStore(shared.redis_url, shared.key_prefix, int(shared.lease_seconds))


def install_access(app: FastAPI, config: ServerConfig) -> None:
    """The key check with the per-key limits, and the metrics (call it where the key check belongs in the
    middleware stack). A key file that cannot be read stops the start (a config mistake fails closed)."""
    keys = KeyFile.load(keys_path(config))
    verifier = ApiKeyVerifier(config.api_keys, keys)
    app.state.keys = keys
    app.state.api_key_verifier = verifier
    app.state.limit_store = None
    metrics_section = config.section("metrics")
    metrics = ServerMetrics() if metrics_section["enabled"] else None
    app.state.metrics = metrics
    health = StoreHealth(on_error=metrics.shared_state_errors.inc if metrics else None)
    app.state.store_health = health

    def take_keys() -> None:
        verifier.update(config.api_keys, keys)

    def reload_keys() -> None:
        keys.reload(then=take_keys)

    app.state.reload_keys = reload_keys
    changing = asyncio.Lock()  # one change at a time per process: a single worker thread waits for the file lock

    async def change_keys(edit: Callable[[KeyFile], T]) -> T:
        """Apply ``edit`` to the key file under its lock (off the event loop); the new keys are in force when it
        returns, so a key created is usable and a key revoked refused at once."""
        async with changing:
            return await asyncio.to_thread(keys.change, edit, take_keys)

    app.state.change_keys = change_keys

    async def reload() -> dict[str, Any]:
        """Keys and binding instances from their files; what cannot be used keeps what is in force."""
        report: dict[str, Any] = {}
        try:
            await asyncio.to_thread(reload_keys)
            report["keys"] = f"{len(keys.records)} named key(s)"
        except ConfigError as exc:
            report["keys"] = f"kept the keys in force: {'; '.join(exc.problems)}"
        try:
            fresh = await asyncio.to_thread(load_main_config, config.path, migrate=False) if config.path else config
        except ConfigError as exc:
            report["binding_instances"] = f"kept the instances in force: {'; '.join(exc.problems)}"
            return report
        grace = config.server.shutdown_grace_seconds
        report["binding_instances"] = await app.state.binding_manager.reload(fresh, grace)
        return report

    app.state.reload = reload
    limiter = Limiter(
        store=lambda: app.state.limit_store,
        fail_open=config.shared_state.fail_open,
        health=health,
        on_refused=metrics.refused if metrics else None,
    )
    protected = PROTECTED_PREFIXES if metrics_section["public"] else (*PROTECTED_PREFIXES, METRICS_PATH)
    app.add_middleware(ApiKeyMiddleware, verifier=verifier, prefixes=protected, limiter=limiter)
    if metrics is not None:
        metrics.watch(lambda: app.state)
        app.include_router(metrics_router)


async def start_access(app: FastAPI, config: ServerConfig) -> asyncio.Task[Any]:
    """The limits store and the observers of generations; returns the task that follows the key file."""
    store = build_limit_store(config)
    app.state.limit_store = store
    share_compute_slots(app, config, store)
    service = app.state.generation_service
    service.observers.append(UsageAccounting(store, app.state.store_health))
    service.token_budget = TokenBudget(
        lambda: app.state.limit_store, app.state.store_health, config.shared_state.fail_open
    )
    if app.state.metrics is not None:
        service.observers.append(app.state.metrics)
    reloads: set[asyncio.Task[Any]] = set()

    def on_sighup() -> None:
        task = asyncio.ensure_future(app.state.reload())
        reloads.add(task)  # kept until done (a task nobody references may be collected)
        task.add_done_callback(reloads.discard)

    try:  # SIGHUP reloads, as for most daemons (the main thread's loop only)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
    except (AttributeError, NotImplementedError, RuntimeError, ValueError):
        logger.debug("SIGHUP cannot be handled here; POST /api/v1/admin/reload reloads")
    return asyncio.create_task(_follow_key_file(app), name="keys-file-watch")


def share_compute_slots(app: FastAPI, config: ServerConfig, store: LimitStore) -> None:
    """With Redis, resource_manager's limit holds across every replica."""
    resources = app.state.resource_manager
    if resources.limit is None or not config.shared_state.redis_url:
        return
    from lollms_server.core.redis_state import RedisLimitStore, RedisSlots

    assert isinstance(store, RedisLimitStore)
    resources.shared = RedisSlots(store, resources.limit)
    fail_open = config.shared_state.fail_open
    health: StoreHealth = app.state.store_health

    def unavailable(exc: Exception) -> bool:
        if not isinstance(exc, StoreUnavailableError):
            return False
        health.failed(exc)
        return fail_open

    resources.shared_unavailable = unavailable


async def stop_access(app: FastAPI, watcher: asyncio.Task[Any]) -> None:
    with suppress(AttributeError, NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
    watcher.cancel()
    with suppress(asyncio.CancelledError):
        await watcher
    store = app.state.limit_store
    app.state.limit_store = None
    if store is not None:
        await store.close()


def _changed(path: Path) -> tuple[int, int, int] | None:
    """What tells one version of the key file from the next: every write replaces the file (a new inode), and
    the modification time in nanoseconds tells apart files written in place within one second."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


async def _follow_key_file(app: FastAPI) -> None:
    """Reload the keys when their file changes (another replica, or `lollms-server keys`, wrote it); a broken
    file keeps the keys in force and says why."""
    path = app.state.keys.path
    seen = _changed(path)
    while True:
        await asyncio.sleep(KEYS_CHECK_SECONDS)
        current = await asyncio.to_thread(_changed, path)
        if current == seen:
            continue
        seen = current
        try:
            await asyncio.to_thread(app.state.reload_keys)
            logger.info("Reloaded the API keys of %s", path)
        except ConfigError as exc:
            logger.error("Kept the API keys in force: %s", "; ".join(exc.problems))
        except Exception:  # the watcher must outlive any file: a dead one would never take a revocation again
            logger.exception("Kept the API keys in force: %s could not be read", path)
