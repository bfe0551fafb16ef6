"""``lollms-server``: run the server and the operator commands around its configuration."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from lollms_server import __version__
from lollms_server.core.config import ServerConfig, hash_api_key, open_main_config
from lollms_server.core.errors import ConfigError
from lollms_server.installing import TORCH_VARIANTS

EXIT_CONFIG_ERROR = 2


def _say(text: str = "") -> None:
    sys.stderr.write(text + "\n")


def _report(problems: list[str], heading: str = "lollms_server cannot start") -> int:
    _say(f"{heading}: {len(problems)} configuration problem(s):")
    for problem in problems:
        _say(f"  - {problem}")
    return EXIT_CONFIG_ERROR


def _config_or_exit(args: argparse.Namespace, create: bool, migrate: bool = True) -> ServerConfig:
    try:
        config, api_key = open_main_config(args.config, create=create, migrate=migrate)
    except ConfigError as exc:
        sys.exit(_report(exc.problems))
    if api_key is not None:
        _say(f"Created a default configuration: {config.path}")
        _say("Authentication is ON. Your API key (shown only this once; the file keeps only its hash):")
        _say(f"    {api_key}")
        _say("Send it in the X-API-Key header. Edit the file or run configuration_wizard.py to change settings.")
    return config


def _serve(args: argparse.Namespace) -> int:
    config = _config_or_exit(args, create=True)  # before the heavy imports: a config problem answers at once

    import uvicorn

    from lollms_server.app import MAIN_CONFIG_ENV, SERVER_ID_ENV, create_app
    from lollms_server.core.relay import new_server_id

    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config.listening_on(args.host, args.port)  # the app's own origins follow the port it listens on
    host, port = config.host, config.port
    workers = config.server.workers
    if workers > 1:
        os.environ[MAIN_CONFIG_ENV] = str(config.path)
        os.environ[SERVER_ID_ENV] = new_server_id()
        uvicorn.run(
            "lollms_server.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=logging.getLevelName(config.log_level).lower(),
            timeout_graceful_shutdown=math.ceil(config.server.shutdown_grace_seconds),
        )
    else:
        uvicorn.run(
            create_app(config),
            host=host,
            port=port,
            log_level=logging.getLevelName(config.log_level).lower(),
            # Stop accepting at once; running requests and streams get this long, then the lifespan unloads.
            timeout_graceful_shutdown=math.ceil(config.server.shutdown_grace_seconds),
        )
    return 0


def _init(args: argparse.Namespace) -> int:
    """The first configuration (``./run.sh``'s last install step): written when there is none; its path on stdout."""
    config = _config_or_exit(args, create=True)
    sys.stdout.write(f"{config.path}\n")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from lollms_server.core.binding_manager import BindingManager
    from lollms_server.core.instance_files import check_instance_files
    from lollms_server.core.resource_manager import ResourceManager

    # Discovery logs every type's trouble; only the instances of bindings_map are this command's business.
    logging.basicConfig(level=logging.CRITICAL)
    config = _config_or_exit(args, create=False, migrate=False)
    result = check_instance_files(config)
    # Instances with valid files are built as the start builds them, and asked what their settings lack.
    result.problems += BindingManager(config, ResourceManager()).settings_problems(result.valid)
    if config.pending_migration_from is not None:
        result.notes.insert(0, f"{config.path}: version {config.pending_migration_from}; the next start migrates it")
    for note in result.notes:
        sys.stdout.write(f"note: {note}\n")
    if result.problems:
        return _report(result.problems, heading="check-config")
    sys.stdout.write(f"{config.path}: OK ({result.checked} binding instance(s) checked)\n")  # results on stdout
    return 0


def _encrypt_secrets(args: argparse.Namespace) -> int:
    from lollms_server.core.atomic_files import remove_interrupted_writes
    from lollms_server.core.instance_secrets import encrypt_instance_secrets

    config = _config_or_exit(args, create=False)
    try:
        # What an interrupted run (or any killed writer) left: temporary files, never one still being written.
        for leftover in remove_interrupted_writes(config.paths.instance_bindings_folder):
            _say(f"{leftover}: removed (left by an interrupted write)")
        reports, problems = encrypt_instance_secrets(config)
    except ConfigError as exc:
        problems, reports = exc.problems, []
    except OSError as exc:
        problems, reports = [f"{exc.filename or config.paths.instance_bindings_folder}: {exc.strerror or exc}"], []
    for report in reports:
        for backup in report.encrypted_backups:
            _say(f"{backup}: an older plaintext backup, now encrypted")
        if report.encrypted_fields:
            _say(f"{report.path}: encrypted {', '.join(report.encrypted_fields)} (encrypted backup: {report.backup})")
        else:
            _say(f"{report.path}: nothing to encrypt")
    for problem in problems:
        _say(f"skipped: {problem}")
    return EXIT_CONFIG_ERROR if problems else 0


def _decrypt_file(args: argparse.Namespace) -> int:
    from cryptography.fernet import InvalidToken

    from lollms_server.core.atomic_files import atomic_write_bytes
    from lollms_server.core.secrets import SecretCipher, SecretKeyError

    config = _config_or_exit(args, create=False)
    key = config.encryption_key
    if not key:
        _say("no encryption key: set security.encryption_key or LOLLMS_ENCRYPTION_KEY")
        return EXIT_CONFIG_ERROR
    source, output = Path(args.file), Path(args.output)
    try:
        data = SecretCipher(key).decrypt_bytes(source.read_bytes())
        # The output holds plaintext secrets: a new file is 0600, an existing one keeps its mode.
        atomic_write_bytes(output, data, private=True)
    except InvalidToken:
        _say(f"{source}: cannot be decrypted with the configured key")
        return EXIT_CONFIG_ERROR
    except SecretKeyError as exc:
        _say(str(exc))
        return EXIT_CONFIG_ERROR
    except OSError as exc:
        _say(f"{exc.filename or source}: {exc.strerror or exc}")
        return EXIT_CONFIG_ERROR
    _say(f"wrote {output}")
    return 0


def _generate_key(args: argparse.Namespace) -> int:
    from lollms_server.core.secrets import generate_key

    sys.stdout.write(generate_key() + "\n")
    return 0


def _hash_key(args: argparse.Namespace) -> int:
    key = args.key if args.key is not None else sys.stdin.readline().strip()
    sys.stdout.write(hash_api_key(key) + "\n")
    return 0


def _install_requirements(args: argparse.Namespace) -> int:
    from subprocess import CalledProcessError

    from lollms_server.core.binding_types import discover_binding_types
    from lollms_server.core.config import builtin_zoo_dir
    from lollms_server.core.requirements import missing_requirements
    from lollms_server.installing import install_packages

    try:  # the configuration's binding folders; without one (an installer), the built-in types
        config, _ = open_main_config(getattr(args, "config", None), create=False)
        folders = [(config.paths.example_bindings_folder, "builtin"), (config.paths.bindings_folder, "personal")]
    except ConfigError:
        folders = [(builtin_zoo_dir() / "bindings", "builtin")]
    logging.basicConfig(level=logging.CRITICAL)  # discovery's notes are not this command's output
    types = discover_binding_types(folders)
    if args.list:
        for name in sorted(name for name, entry in types.items() if entry.missing_requirements):
            sys.stdout.write(f"{name}\n")
        return 0
    wanted = sorted(types) if args.all else args.binding_types
    unknown = [name for name in wanted if name not in types or types[name].card is None]
    if unknown:
        _say(f"unknown or broken binding types: {', '.join(unknown)}; known: {', '.join(sorted(types))}")
        return EXIT_CONFIG_ERROR
    requirements = sorted({req for name in wanted for req in types[name].card.requirements})  # type: ignore[union-attr]
    missing = missing_requirements(requirements)
    if not missing:
        _say("all requirements are already installed")
        return 0
    _say(f"installing: {', '.join(missing)}")
    try:  # llama-cpp-python through the safe, cached build; torch as the chosen build
        install_packages(sys.executable, [item.split(" (")[0] for item in missing], torch_variant=args.torch)
    except CalledProcessError as exc:
        _say(f"installation failed: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}")
        return 1
    return 0


def _install_personality_deps(args: argparse.Namespace) -> int:
    import pipmaster

    from lollms_server.core.errors import NotFoundError
    from lollms_server.core.personalities import PersonalityManager

    config = _config_or_exit(args, create=False)
    paths = config.paths
    manager = PersonalityManager(
        [(paths.example_personalities_folder, "builtin"), (paths.personalities_folder, "personal")],
        config.section("personalities_config"),
    )
    manager.load()
    try:
        personality = manager.get(args.personality)
    except NotFoundError as exc:
        _say(str(exc))
        return EXIT_CONFIG_ERROR
    if not personality.missing_dependencies:
        _say(f"'{personality.id}' has all its dependencies")
        return 0
    _say(f"installing for '{personality.id}': {', '.join(personality.missing_dependencies)}")
    return 0 if pipmaster.ensure_packages(personality.config.dependencies) else 1


def _keys(args: argparse.Namespace) -> int:
    from lollms_server.api.access import keys_path
    from lollms_server.core.api_keys import KeyFile, KeyLimits
    from lollms_server.core.errors import NotFoundError, UnavailableError

    config = _config_or_exit(args, create=False, migrate=False)
    try:
        keys = KeyFile.load(keys_path(config))
        if args.action == "list":
            for record in keys.records.values():
                public = record.public()
                limits = ", ".join(f"{k}={v}" for k, v in public["limits"].items() if v is not None) or "no limits"
                expiry = f", expires {public['expires']}" + (" (expired)" if public["expired"] else "")
                sys.stdout.write(f"{public['name']}: {public['role']}, {limits}{expiry if public['expires'] else ''}\n")
            return 0
        if args.action == "revoke":
            keys.change(lambda current: current.revoke(args.name))
            sys.stdout.write(f"revoked {args.name} (running servers drop it within seconds)\n")
            return 0
        key_limits = KeyLimits(args.rpm, args.tpm, args.tokens_per_day, args.concurrent)
        models = tuple(item for item in (args.models or "").split(",") if item)
        personalities = tuple(item for item in (args.personalities or "").split(",") if item)
        secret = keys.change(
            lambda current: current.create(args.name, args.role, key_limits, models, personalities, args.expires)
        )
    except ConfigError as exc:
        return _report(exc.problems, heading="keys")
    except (NotFoundError, UnavailableError) as exc:  # no such key; the file locked elsewhere or not lockable
        _say(f"keys: {exc}")
        return EXIT_CONFIG_ERROR
    sys.stdout.write(f"{secret}\n")
    _say(f"key '{args.name}' ({args.role}) created; its secret above is shown only this once")
    return 0


def _wizard(args: argparse.Namespace) -> int:
    from lollms_server.wizard.main import main as wizard_main

    return wizard_main(args.wizard_args)


def _instances(args: argparse.Namespace) -> int:
    from lollms_server.wizard import instances

    config = _config_or_exit(args, create=False, migrate=False)
    assert config.path is not None
    return instances.run(args, config.path)


def build_parser() -> argparse.ArgumentParser:
    config_help = "main config file or its folder (default: $LOLLMS_CONFIG_DIR, else ./lollms_configs)"
    parser = argparse.ArgumentParser(prog="lollms-server", description="LOLLMS multi-modal generation server.")
    parser.add_argument("--version", action="version", version=f"lollms_server {__version__}")
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=int, help="override server.port")
    parser.set_defaults(handler=_serve)
    # Sub-commands accept --config too; SUPPRESS keeps a value given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    commands = parser.add_subparsers(title="commands")

    def command(name: str, help_: str, handler: object) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    serve = command("serve", "run the server (the default)", _serve)
    serve.add_argument("--host", default=argparse.SUPPRESS, help="override server.host")
    serve.add_argument("--port", type=int, default=argparse.SUPPRESS, help="override server.port")
    command("init", "write the default configuration when there is none (its API key shown once)", _init)
    command("check-config", "validate the configuration and exit", _check_config)
    command("encrypt-secrets", "encrypt plaintext secret fields of the binding instance files", _encrypt_secrets)
    decrypt = command("decrypt-file", "decrypt an encrypted backup made by encrypt-secrets", _decrypt_file)
    decrypt.add_argument("file")
    decrypt.add_argument("output")
    command("generate-key", "print a new Fernet encryption key", _generate_key)
    hash_key = command("hash-key", "print the sha256: form of an API key (reads stdin without KEY)", _hash_key)
    hash_key.add_argument("key", nargs="?")
    install = command("install-requirements", "pip-install the requirements of binding types", _install_requirements)
    install.add_argument("binding_types", nargs="*")
    install.add_argument("--all", action="store_true", help="every discovered binding type")
    install.add_argument("--list", action="store_true", help="print the binding types that miss requirements")
    install.add_argument(
        "--torch", default="cpu", choices=TORCH_VARIANTS, help="torch build when one is needed (default: cpu)"
    )
    personality_deps = command(
        "install-personality-deps", "pip-install the dependencies a personality declares", _install_personality_deps
    )
    personality_deps.add_argument("personality", help="personality id or name")
    keys = command("keys", "create, list or revoke named API keys (roles, expiry, limits)", _keys)
    key_actions = keys.add_subparsers(title="actions", dest="action", required=True)
    create = key_actions.add_parser("create", help="a new key; its secret is printed once")
    create.add_argument("name")
    create.add_argument("--role", choices=["admin", "user"], default="user")
    create.add_argument("--expires", help="date or time, e.g. 2027-01-31 or 2027-01-31T12:00Z")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--tokens-per-day", type=int)
    create.add_argument("--concurrent", type=int, help="concurrent requests")
    create.add_argument("--models", help="comma-separated model ids or patterns it may use (default: all)")
    create.add_argument("--personalities", help="comma-separated personalities or patterns (default: all)")
    key_actions.add_parser("list", help="the keys, their roles and limits (never their secrets)")
    revoke = key_actions.add_parser("revoke", help="remove a key")
    revoke.add_argument("name")
    wizard = command("wizard", "create or edit the configuration (configuration_wizard.py; --help there)", _wizard)
    wizard.add_argument("wizard_args", nargs=argparse.REMAINDER, help="the wizard's own options")
    from lollms_server.wizard.instances import add_arguments

    add_arguments(command("instances", "list, show, add, edit or remove binding instances", _instances))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
