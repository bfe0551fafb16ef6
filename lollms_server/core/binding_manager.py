"""BindingManager: binding types, the configured instances, their health, and recovery without restart."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from lollms_server.core.binding_types import BindingType, discover_binding_types
from lollms_server.core.bindings import Binding
from lollms_server.core.config import ServerConfig
from lollms_server.core.config_paths import find_config_file
from lollms_server.core.config_validation import secret_paths, without_secrets
from lollms_server.core.errors import ConfigError, NotFoundError, UnavailableError
from lollms_server.core.instance_files import load_instance_values, type_problem
from lollms_server.core.limits import check_name
from lollms_server.core.model_access import ModelAccess, checked_model
from lollms_server.core.model_ids import ModelIds
from lollms_server.core.relay import instance_loops, relay_problem
from lollms_server.core.resource_manager import ResourceManager
from lollms_server.core.secrets import SecretCipher, SecretKeyError

logger = logging.getLogger(__name__)

HEALTH_CHECK_TIMEOUT = 10.0
NOT_CHECKED = "not checked yet"
# An unavailable instance asked for by a request is re-checked at most this often.
ON_DEMAND_RECHECK_SECONDS = 2.0


class InstanceState(str, enum.Enum):
    ACTIVE = "active"
    UNAVAILABLE = "unavailable"  # its backend did not answer; re-checked until it does
    ERROR = "error"  # configuration or code problem; needs the operator


@dataclass
class BindingInstance:
    name: str
    type_name: str
    state: InstanceState
    reason: str | None = None
    binding: Binding | None = None
    public_config: dict[str, Any] = field(default_factory=dict)
    secret_values: list[str] = field(default_factory=list)
    last_check: float = -math.inf  # time.monotonic() of the last check; never yet (0.0 is recent after a boot)
    fingerprint: str = ""  # of its type and instance file: a reload rebuilds it only when this changes

    def public_info(self) -> dict[str, Any]:
        info = dict(self.public_config) or {"type": self.type_name, "binding_instance_name": self.name}
        info.update({"status": self.state.value, "error": self.reason})
        return info


def scrub(text: str, secrets: list[str]) -> str:
    """Remove secret values from a message a binding produced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _secret_values(values: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    found = []
    for path in secret_paths(schema):
        node: Any = values
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str) and node:
            found.append(node)
    return found


class BindingManager:
    """Discovers binding types, builds the instances of ``bindings_map`` and keeps their health current."""

    def __init__(self, config: ServerConfig, resource_manager: ResourceManager) -> None:
        self.config = config
        self.resource_manager = resource_manager
        self.types: dict[str, BindingType] = {}
        self.instances: dict[str, BindingInstance] = {}
        self._recheck_task: asyncio.Task[None] | None = None

    @property
    def model_ids(self) -> ModelIds:
        """The instances and ``model_aliases``, to read the model ids of the compatible APIs."""
        return ModelIds(self.instances, self.config.model_aliases)

    # --- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.types = self._discover_types()
        cipher = self._cipher()
        for name, type_name in self.config.bindings_map.items():
            self.instances[name] = self._build_instance(name, type_name, cipher)
        self._refuse_loops(self.instances)
        for second_wave in (False, True):  # instances over other instances (routers) once those are checked
            await asyncio.gather(
                *(
                    self._check(instance)
                    for instance in self.instances.values()
                    if instance.binding is not None and instance.binding.uses_other_instances is second_wave
                )
            )
        for instance in self.instances.values():
            if instance.state is InstanceState.ACTIVE:
                logger.info("Binding instance '%s' (%s) is active", instance.name, instance.type_name)
            else:
                logger.error(
                    "Binding instance '%s' (%s) is %s: %s",
                    instance.name,
                    instance.type_name,
                    instance.state.value,
                    instance.reason,
                )
        interval = self.config.server.binding_recheck_interval
        self._recheck_task = asyncio.create_task(self._recheck_forever(interval), name="binding-recheck")

    async def stop(self) -> None:
        if self._recheck_task is not None:
            self._recheck_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recheck_task
        for instance in self.instances.values():
            if instance.binding is None:
                continue
            try:
                await instance.binding.unload_model()
            except Exception as exc:  # shutting down: report and carry on with the others
                logger.warning("Unloading '%s' failed: %s", instance.name, scrub(str(exc), instance.secret_values))

    def settings_problems(self, names: list[str]) -> list[str]:
        """What a start would find wrong with the settings of instances ``names`` (whose files are valid), found
        the way the start finds it but asking no backend and writing nothing (``lollms-server check-config``): an
        instance that cannot be built, or whose own settings make it unusable (``Binding.settings_problem``)."""
        self.types = self._discover_types()
        cipher = self._cipher()
        problems = []
        for name in names:
            instance = self._build_instance(name, self.config.bindings_map[name], cipher, migrate=False)
            if instance.binding is None:
                problems.append(f"instance '{name}': {instance.reason}")
                continue
            try:
                problem = instance.binding.settings_problem()
            except Exception as exc:  # a binding's bug is reported like its other problems
                problem = f"settings check failed: {type(exc).__name__}: {exc}"
            if problem is not None:
                problems.append(f"instance '{name}': unavailable at start: {scrub(problem, instance.secret_values)}")
        return problems

    # --- building instances -------------------------------------------------------------------
    def _discover_types(self) -> dict[str, BindingType]:
        paths = self.config.paths
        return discover_binding_types([(paths.example_bindings_folder, "builtin"), (paths.bindings_folder, "personal")])

    def _cipher(self) -> SecretCipher | None:
        key = self.config.encryption_key
        if not key:
            return None
        try:
            return SecretCipher(key)
        except SecretKeyError as exc:
            logger.error("Encryption key unusable: %s; encrypted instance settings cannot be read", exc)
            return None

    def _fingerprint(self, name: str, type_name: str) -> str:
        path = find_config_file(self.config.paths.instance_bindings_folder, name)
        content = path.read_bytes() if path is not None and path.is_file() else b""
        return hashlib.sha256(type_name.encode() + b"\0" + content).hexdigest()

    def _build_instance(
        self, name: str, type_name: str, cipher: SecretCipher | None, *, migrate: bool = True
    ) -> BindingInstance:
        instance = BindingInstance(name=name, type_name=type_name, state=InstanceState.ERROR)
        try:
            instance.fingerprint = self._fingerprint(name, type_name)
        except (OSError, ConfigError):
            instance.fingerprint = ""
        instance.reason = type_problem(self.types, type_name)
        binding_type = self.types.get(type_name)
        if instance.reason is not None or binding_type is None or binding_type.card is None or binding_type.cls is None:
            return instance
        schema = binding_type.card.instance_schema
        try:
            values, _ = load_instance_values(
                self.config.paths.instance_bindings_folder, name, type_name, schema, cipher, migrate=migrate
            )
        except ConfigError as exc:
            instance.reason = "; ".join(exc.problems)
            return instance
        instance.public_config = without_secrets(values, schema)
        instance.secret_values = _secret_values(values, schema)
        try:
            instance.binding = binding_type.cls(config=values, resource_manager=self.resource_manager)
            instance.binding.models_folder = self.config.paths.models_folder
            instance.binding.input_limits = self.config.input_limits
            # The instances a binding works over (a router's backends) are the operator's choice, not the caller's.
            instance.binding.instance_of = self._active_binding
        except Exception as exc:
            instance.reason = scrub(f"initialisation failed: {type(exc).__name__}: {exc}", instance.secret_values)
            return instance
        config = self.config
        loop = relay_problem(instance.binding.backend_url, config.host, config.port, config.public_url)
        if loop is not None:  # this server itself: every request would come back (core.relay)
            instance.binding, instance.reason = None, loop
            return instance
        instance.state = InstanceState.UNAVAILABLE
        instance.reason = NOT_CHECKED
        return instance

    async def reload(self, config: ServerConfig, grace_seconds: float = 30.0) -> dict[str, str]:
        """Take ``config``'s bindings_map, defaults and aliases and re-read the instance files: new and changed
        instances are built and checked, removed ones dropped. Requests already running keep the binding they
        hold; replaced ones are unloaded after ``grace_seconds``. A new file that cannot be used keeps the
        instance in force and says why. Returns what happened to each instance."""
        cipher = self._cipher()
        report: dict[str, str] = {}
        fresh: dict[str, BindingInstance] = {}
        for name, type_name in config.bindings_map.items():
            old = self.instances.get(name)
            try:  # file reads (and building a binding) off the event loop: requests keep being served
                fingerprint = await asyncio.to_thread(self._fingerprint, name, type_name)
            except (OSError, ConfigError):
                fingerprint = ""
            if old is not None and old.fingerprint == fingerprint and old.type_name == type_name:
                fresh[name], report[name] = old, "unchanged"
                continue
            built = await asyncio.to_thread(self._build_instance, name, type_name, cipher)
            if built.binding is None and old is not None and old.binding is not None:
                fresh[name], report[name] = old, f"kept the running instance: {built.reason}"
                continue
            await self._check(built)
            fresh[name], report[name] = built, "added" if old is None else "reloaded"
        for name in self.instances:
            if name not in fresh:
                report[name] = "removed"
        self._refuse_loops(fresh)
        retired = [i.binding for n, i in self.instances.items() if i.binding and fresh.get(n) is not i]
        self.instances = fresh
        for section in ("bindings_map", "defaults", "model_aliases"):
            self.config.values[section] = config.values[section]
        if retired:
            asyncio.get_running_loop().call_later(grace_seconds, lambda: asyncio.ensure_future(self._unload(retired)))
        logger.info("Binding instances reloaded: %s", ", ".join(f"{n} {r}" for n, r in report.items()) or "none")
        return report

    async def _unload(self, bindings: list[Binding]) -> None:
        for binding in bindings:
            try:
                await binding.unload_model()
            except Exception as exc:  # retired: report and go on
                logger.warning("Unloading a replaced binding instance failed: %s", exc)

    @staticmethod
    def _refuse_loops(instances: dict[str, BindingInstance]) -> None:
        """Instances whose requests would come back to them (a router among its own backends, directly or through
        others) are refused: they could only recurse."""
        uses = {name: i.binding.other_instances() for name, i in instances.items() if i.binding is not None}
        for name, way in instance_loops(uses).items():
            instance = instances[name]
            instance.binding, instance.state = None, InstanceState.ERROR
            instance.reason = f"its requests would come back to it ({way}): take it out of the instances it uses"

    # --- health -------------------------------------------------------------------------------
    async def _check(self, instance: BindingInstance) -> None:
        binding = instance.binding
        if binding is None:
            return
        instance.last_check = time.monotonic()
        try:
            healthy, message = await asyncio.wait_for(self._health(binding), HEALTH_CHECK_TIMEOUT)
        except asyncio.TimeoutError:
            healthy, message = False, f"health check did not answer within {HEALTH_CHECK_TIMEOUT:g}s"
        except Exception as exc:
            healthy, message = False, f"health check failed: {type(exc).__name__}: {exc}"
        if healthy and instance.state is InstanceState.UNAVAILABLE and instance.reason != NOT_CHECKED:
            logger.info("Binding instance '%s' is available again", instance.name)
        instance.state = InstanceState.ACTIVE if healthy else InstanceState.UNAVAILABLE
        instance.reason = None if healthy else scrub(str(message), instance.secret_values)

    @staticmethod
    async def _health(binding: Binding) -> tuple[bool, str]:
        """The instance's own settings first (on this machine, in a worker thread), then its backend."""
        problem = await asyncio.to_thread(binding.settings_problem)
        if problem is not None:
            return False, problem
        return await binding.health_check()

    async def recheck_unavailable(self) -> None:
        await asyncio.gather(
            *(
                self._check(instance)
                for instance in self.instances.values()
                if instance.state is InstanceState.UNAVAILABLE and instance.binding is not None
            )
        )

    async def _recheck_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.recheck_unavailable()
            except Exception:  # the loop must survive any binding's misbehaviour
                logger.exception("Binding health re-check failed")

    # --- queries (what the key of the request may use: core.model_access) ------------------------
    def _visible(self) -> dict[str, BindingInstance]:
        access = ModelAccess.current()
        return {name: instance for name, instance in self.instances.items() if access.may_use_instance(name)}

    def list_types(self) -> dict[str, dict[str, Any]]:
        """Binding types; a key limited to some models sees the types of the instances it may use."""
        shown = {instance.type_name for instance in self._visible().values()}
        everything = not ModelAccess.current().restricts_models
        return {name: entry.public_info() for name, entry in sorted(self.types.items()) if everything or name in shown}

    def list_instances(self) -> dict[str, dict[str, Any]]:
        return {name: instance.public_info() for name, instance in self._visible().items()}

    def list_active_instances(self) -> dict[str, dict[str, Any]]:
        return {
            name: dict(instance.public_config)
            for name, instance in self._visible().items()
            if instance.state is InstanceState.ACTIVE
        }

    async def get_binding(self, name: str) -> Binding:
        """The active binding of an instance the key may use; ForbiddenError for a name outside its lists (known
        or not), NotFoundError or UnavailableError (with the reason) otherwise."""
        ModelAccess.current().check_instance(name)
        return await self._active_binding(name)

    async def use(self, name: str, model: str | None) -> tuple[Binding, str | None]:
        """The binding of instance ``name`` and the model ``model`` resolves to on it (None: its default), both
        allowed to the key of the request."""
        check_name("binding_name", name)
        binding = await self.get_binding(name)
        return binding, await checked_model(name, binding, model)

    async def _active_binding(self, name: str) -> Binding:
        instance = self.instances.get(name)
        if instance is None:
            known = ", ".join(ModelAccess.current().visible_instances(self.instances)) or "none"
            raise NotFoundError(f"binding instance '{name}' not found (configured instances: {known})")
        if (
            instance.state is InstanceState.UNAVAILABLE
            and instance.binding is not None
            and time.monotonic() - instance.last_check >= ON_DEMAND_RECHECK_SECONDS
        ):
            await self._check(instance)
        if instance.state is not InstanceState.ACTIVE or instance.binding is None:
            raise UnavailableError(f"binding instance '{name}' is {instance.state.value}: {instance.reason}")
        return instance.binding
