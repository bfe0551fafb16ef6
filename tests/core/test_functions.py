"""FunctionManager discovery and execution; the shipped math and date functions."""

from __future__ import annotations

import textwrap
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lollms_server.core.config import builtin_zoo_dir
from lollms_server.core.functions import FunctionManager
from lollms_server.core.plugin_import import import_file

USER_FUNCTIONS = '''
import asyncio

async def greet(name: str, punctuation: str = "!") -> str:
    """Say hello."""
    return f"Hello {name}{punctuation}"

async def slow() -> None:
    await asyncio.Event().wait()  # never ends

async def broken() -> None:
    raise RuntimeError("kaput")

def not_async() -> int:
    return 1

async def _private() -> None:
    pass
'''


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[FunctionManager]:
    (tmp_path / "my_tools.py").write_text(textwrap.dedent(USER_FUNCTIONS))
    (tmp_path / "broken_module.py").write_text("import does_not_exist_xyz\n")
    functions = FunctionManager(folders(tmp_path))  # the default timeout (30 s): only 'slow' would reach it
    functions.discover()
    yield functions
    await functions.close()


# Numbers beyond 1e300 that Python would build in full (each at most 200 characters, the evaluator's limit).
HUGE_EXPRESSIONS = [
    "9**9**9",
    "10**10**8",
    "(10**299)**1000",
    "(9**300)**1000 // 3",
    "10**300 * 10**300",
    "(10**299 + 10**299) * 10",
    "0.5**-1000",
    "1e300 / 1e-300",
    "1e300 // 1e-10",
    "round(1, -10**299)",
    "round(1, 10**299)",
    "9" * 190 + "**9",
]


def folders(tmp_path: Path) -> list[tuple[Path, str]]:
    return [(builtin_zoo_dir() / "functions", "builtin"), (tmp_path, "personal")]


def test_discovery(manager: FunctionManager) -> None:
    names = manager.list_functions()
    assert {"my_tools.greet", "my_tools.slow", "my_tools.broken", "math_tools.evaluate", "datetime_tools.now"} <= set(
        names
    )
    assert "my_tools._private" not in names and "my_tools.not_async" not in names
    assert "async" in manager.problems["my_tools.not_async"]
    assert "ModuleNotFoundError" in next(v for k, v in manager.problems.items() if k.endswith("broken_module.py"))
    assert manager.functions["my_tools.greet"].public_info()["description"] == "Say hello."


async def test_execution_results_and_errors(manager: FunctionManager, tmp_path: Path) -> None:
    assert await manager.execute_function("my_tools.greet", {"name": "Ada"}) == (True, "Hello Ada!")
    ok, message = await manager.execute_function("my_tools.greet", {})
    assert not ok and "missing a required argument: 'name'" in message
    ok, message = await manager.execute_function("my_tools.greet", {"name": "x", "colour": "red"})
    assert not ok and "unexpected keyword argument 'colour'" in message
    ok, message = await manager.execute_function("my_tools.nope", {})
    assert not ok and "unknown function" in message and "my_tools.greet" in message
    quick = FunctionManager(folders(tmp_path), timeout=0.2)  # a function that never ends meets its timeout
    quick.discover()
    ok, message = await quick.execute_function("my_tools.slow", {})
    await quick.close()
    assert not ok and "did not finish within 0.2s" in message
    ok, message = await manager.execute_function("my_tools.broken", {})
    assert not ok and "RuntimeError: kaput" in message


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("12*7", 84),
        ("(2+3)**2 - 1", 24),
        ("sqrt(16) + 2^3", 12.0),
        ("7 // 2 + 7 % 2", 4),
        ("-pi + pi", 0.0),
        ("round(1234.5678, 2)", 1234.57),
        ("round(1234.5678, -2)", 1200.0),
        ("round(2.5)", 2),
        ("10**300", 10**300),  # the largest magnitude, exactly
        ("(10**150)**2 - 1", 10**300 - 1),
        ("1**(10**300) + (-1)**(10**300) + 0**(10**300)", 2),
        ("2**-1075", 0.0),
    ],
)
async def test_safe_arithmetic(manager: FunctionManager, expression: str, expected: float) -> None:
    assert await manager.execute_function("math_tools.evaluate", {"expression": expression}) == (True, expected)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('x')",
        "9**9**9",
        "[1, 2]",
        "a + 1",
        "1" * 300,
        "round(1, -10**299)",  # Python builds 10**(10**299): the event loop froze
        "round(2.5, 0.5)",
        "exp(1000)",
        *HUGE_EXPRESSIONS,
        "(-8)**0.5",  # a complex number
        "'a'*10**9",
        "[0]*10**9",
        "1 < 2 < 10**300",
        "pow(2, 10**300, 7)",
        "-" * 150 + "9**9**9",
    ],
)
async def test_arithmetic_refuses_everything_else(manager: FunctionManager, expression: str) -> None:
    ok, message = await manager.execute_function("math_tools.evaluate", {"expression": expression})
    assert not ok and ("ValueError" in message or "SyntaxError" in message)


@pytest.mark.parametrize("expression", HUGE_EXPRESSIONS)
async def test_arithmetic_never_builds_a_number_past_its_bound(expression: str) -> None:
    """Each result's size is estimated before it is computed: no expression makes Python hold a number larger
    than 1e300 (125 bytes), even for a moment. (Computing (10**299)**1000 first held 124 KB, and round(1,
    -10**299) would have built 10**(10**299).)"""
    math_tools = import_file(builtin_zoo_dir() / "functions" / "math_tools.py", "_math_tools_under_test")
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="too large|not a real number|digits"):
            await math_tools.evaluate(expression)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024  # the syntax tree, the exception and its traceback: about 10 KB


async def test_dates(manager: FunctionManager) -> None:
    assert await manager.execute_function(
        "datetime_tools.days_between", {"start": "2026-01-01", "end": "2026-03-01"}
    ) == (
        True,
        59,
    )
    ok, now = await manager.execute_function("datetime_tools.now", {"timezone_name": "Europe/Paris"})
    assert ok and now[4] == "-" and now.endswith(("+01:00", "+02:00"))
