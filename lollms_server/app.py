"""The application factory: ``create_app(config)``; the lifespan builds and tears down the managers."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI

from lollms_server import __version__
from lollms_server.api import admin, artifacts, endpoints, generate, lollms_helpers, personalities, tokens
from lollms_server.api.access import install_access, start_access, stop_access
from lollms_server.api.anthropic_compat import protocol as anthropic_protocol
from lollms_server.api.anthropic_compat import routes as anthropic_routes
from lollms_server.api.body_limit import RequestBodyGuard
from lollms_server.api.cors import BrowserCORSMiddleware
from lollms_server.api.error_shapes import ErrorShapes
from lollms_server.api.errors import REQUEST_ID_HEADER, RequestIdMiddleware, install_error_handlers
from lollms_server.api.fallbacks import install_fallbacks
from lollms_server.api.ollama_compat import protocol as ollama_protocol
from lollms_server.api.ollama_compat import routes as ollama_routes
from lollms_server.api.openai_compat import protocol as openai_protocol
from lollms_server.api.openai_compat import routes as openai_routes
from lollms_server.api.openapi import customize_openapi
from lollms_server.api.relay import RelayLoopMiddleware, relaying_lifespan
from lollms_server.api.webui import install_ui
from lollms_server.core import tracing
from lollms_server.core.artifacts import ArtifactStore
from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.config import ServerConfig, load_main_config
from lollms_server.core.embeddings import EmbeddingService
from lollms_server.core.functions import FunctionManager
from lollms_server.core.generation import GenerationService
from lollms_server.core.personalities import PersonalityManager
from lollms_server.core.relay import RelayGuard, new_server_id
from lollms_server.core.resource_manager import ResourceManager

logger = logging.getLogger(__name__)

# Set by the CLI so that uvicorn worker processes (workers > 1) load the same config file, and share one server id
# (core.relay: a request relayed back to any of them is recognised at once).
MAIN_CONFIG_ENV = "LOLLMS_MAIN_CONFIG"
SERVER_ID_ENV = "LOLLMS_SERVER_ID"


def create_app(config: ServerConfig, server_id: str | None = None) -> FastAPI:
    """Build the FastAPI app for ``config``; nothing heavy happens until the lifespan starts. ``server_id``: the
    relay id it shares with other workers (a new one by default)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not app.state.api_key_verifier.required:
            logger.warning(
                "AUTHENTICATION IS DISABLED: security.allowed_api_keys is empty, so anyone who can reach "
                "%s:%s can use every endpoint. Add a key to the main config.",
                config.host,
                config.port,
            )
        resource_manager = ResourceManager.from_config(config.section("resource_manager"))
        binding_manager = BindingManager(config, resource_manager)
        await binding_manager.start()
        paths = config.paths
        personality_manager = PersonalityManager(
            [(paths.example_personalities_folder, "builtin"), (paths.personalities_folder, "personal")],
            config.section("personalities_config"),
        )
        server_settings = config.server
        function_manager = FunctionManager(
            [(paths.example_functions_folder, "builtin"), (paths.functions_folder, "personal")],
            timeout=server_settings.function_timeout,
            memory_bytes=server_settings.function_memory_bytes,
            workers=server_settings.function_workers,
        )
        # Imports and hundreds of YAML files: off the event loop.
        await anyio.to_thread.run_sync(personality_manager.load)
        await anyio.to_thread.run_sync(function_manager.discover)
        app.state.resource_manager = resource_manager
        app.state.binding_manager = binding_manager
        app.state.personality_manager = personality_manager
        app.state.function_manager = function_manager
        artifact_store = build_artifact_store(config)
        await artifact_store.sweep()  # what expired while the server was down
        app.state.artifact_store = artifact_store
        app.state.generation_service = GenerationService(
            config, binding_manager, resource_manager, personality_manager, function_manager, artifact_store
        )
        app.state.embedding_service = EmbeddingService(config, binding_manager)
        key_watcher = await start_access(app, config)
        # Everything built so far lives as long as the server: keep it out of the garbage collector's
        # scans, which otherwise grow with every loaded module and make each full collection slower.
        gc.freeze()
        try:
            yield
        finally:
            await stop_access(app, key_watcher)
            app.state.generation_service = None
            app.state.embedding_service = None
            app.state.binding_manager = None
            app.state.personality_manager = None
            app.state.function_manager = None
            app.state.artifact_store = None
            await function_manager.close()
            await binding_manager.stop()
            await resource_manager.models.unload()
            await resource_manager.models.drain()

    relay = RelayGuard(server_id or new_server_id(), config.server.max_relay_hops)
    telemetry = config.server.opentelemetry
    if telemetry:
        tracing.configure(config.server.otlp_endpoint)
    app = FastAPI(
        telemetry={"tracing": telemetry, "metrics": telemetry, "logs": telemetry},
        title="lollms_server",
        version=__version__,
        description="Multi-modal generation server for the LOLLMS ecosystem.",
        lifespan=relaying_lifespan(lifespan, relay),
    )
    app.state.config = config
    app.state.relay_guard = relay
    app.state.binding_manager = None
    app.state.generation_service = None
    app.state.embedding_service = None
    app.state.artifact_store = None
    # Each API answers errors in its own shape (its clients' SDKs read them natively); ours elsewhere.
    app.state.error_shapes = ErrorShapes(
        openai_protocol.ERROR_SHAPE, anthropic_protocol.ERROR_SHAPE, ollama_protocol.ERROR_SHAPE
    )
    install_error_handlers(app)
    install_fallbacks(app)
    customize_openapi(app)
    # The busiest routes first: FastAPI matches in order, router by router (~3 µs for each router passed over), so
    # /generate and then the compatible APIs' generation routes are found before the others. No paths overlap.
    app.include_router(openai_routes.router)
    app.include_router(anthropic_routes.router)
    app.include_router(ollama_routes.router)
    install_ui(app, bool(config.section("webui")["enable_ui"]))  # the web UI at /, or where the docs are
    app.include_router(endpoints.public_router)
    for module in (endpoints, tokens, personalities, artifacts, admin):
        app.include_router(module.router)
    app.include_router(lollms_helpers.public_router)
    app.include_router(lollms_helpers.router)
    app.router.routes[0:0] = generate.routes
    # Innermost first: the body is read (bounded, checked, declared JSON) only for requests that passed the key check.
    app.add_middleware(RequestBodyGuard, max_bytes=int(config.section("limits")["max_request_bytes"]))
    install_access(app, config)  # per-key limits inside the key check, then the key check
    app.add_middleware(RelayLoopMiddleware, guard=relay)  # a request that came back costs nothing more
    app.add_middleware(RequestIdMiddleware, metrics=app.state.metrics)  # ids, and the HTTP metrics
    app.add_middleware(
        BrowserCORSMiddleware,
        allow_origins=config.allowed_origins,
        expose_headers=[REQUEST_ID_HEADER],
    )
    return app


def build_artifact_store(config: ServerConfig) -> ArtifactStore:
    """The artifact store of the ``artifacts`` section; a relative folder is under the main config's folder."""
    section = config.section("artifacts")
    folder = Path(os.path.expanduser(section["folder"]))
    return ArtifactStore(
        folder if folder.is_absolute() else config.paths.config_dir / folder,
        max_bytes=int(section["max_total_bytes"]),
        ttl_seconds=float(section["ttl_seconds"]),
        max_count=int(section["max_count"]),
        rescan_seconds=float(section["rescan_seconds"]),
    )


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: loads the config file named by $LOLLMS_MAIN_CONFIG."""
    return create_app(load_main_config(Path(os.environ[MAIN_CONFIG_ENV])), server_id=os.environ.get(SERVER_ID_ENV))
