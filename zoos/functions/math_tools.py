"""Arithmetic without eval: a small evaluator over Python's syntax tree.

Every number it handles stays within a float's range (1e300): each operation's result size is estimated from
its operands before it is computed, so no expression makes Python build a huge number (9**9**9, (10**299)**1000
and round(1, -10**299) are refused at once). Results are real numbers: a complex one ((-8)**0.5) is refused.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

_MAX_LENGTH = 200
_MAX_MAGNITUDE = 1e300  # |every value|
_MAX_LOG10 = math.log10(_MAX_MAGNITUDE)
_MAX_DIGITS = 308  # round(x, n): beyond a float's range n only makes Python build 10**|n|
_LOG10_2 = math.log10(2)

Number = int | float


def _log10(value: Number) -> float:
    """log10(|value|), -inf for 0 (math.log10 takes ints of any size)."""
    return math.log10(abs(value)) if value != 0 else -math.inf


def _sum_size(left: Number, right: Number) -> float:
    return max(_log10(left), _log10(right)) + _LOG10_2


def _product_size(left: Number, right: Number) -> float:
    return _log10(left) + _log10(right)


def _quotient_size(left: Number, right: Number) -> float:
    return _log10(left) - _log10(right) if right != 0 else -math.inf  # / 0 raises ZeroDivisionError


def _remainder_size(left: Number, right: Number) -> float:
    return _log10(right)


def _power_size(base: Number, exponent: Number) -> float:
    if base < 0 and exponent != int(exponent):
        raise ValueError(f"{base} ** {exponent} is not a real number")
    if base in (0, 1, -1):
        return 0.0  # whatever the exponent (0 ** -n raises ZeroDivisionError)
    return exponent * _log10(base)


# Each operator with the estimate of its result's size (log10 of its magnitude), checked before it runs.
_BINARY: dict[type[ast.operator], tuple[Callable[[Number, Number], Number], Callable[[Number, Number], float]]] = {
    ast.Add: (operator.add, _sum_size),
    ast.Sub: (operator.sub, _sum_size),
    ast.Mult: (operator.mul, _product_size),
    ast.Div: (operator.truediv, _quotient_size),
    ast.FloorDiv: (operator.floordiv, _quotient_size),
    ast.Mod: (operator.mod, _remainder_size),
    ast.Pow: (operator.pow, _power_size),
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _round(number: Number, digits: Number = 0) -> Number:
    if digits != int(digits) or abs(digits) > _MAX_DIGITS:
        raise ValueError(f"round's digits must be a whole number from -{_MAX_DIGITS} to {_MAX_DIGITS}")
    return round(number, int(digits))


# Functions of numbers within 1e300 whose results are floats (an overflow raises) or no larger than their argument.
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def _checked(value: Number) -> Number:
    if isinstance(value, complex) or not isinstance(value, (int, float)):
        raise ValueError("the result is not a real number")
    if isinstance(value, float) and math.isnan(value):
        raise ValueError("the result is not a number")
    if abs(value) > _MAX_MAGNITUDE:
        raise ValueError(f"result too large (beyond {_MAX_MAGNITUDE:g})")
    return value


def _value(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return _checked(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        compute, size = _BINARY[type(node.op)]
        left, right = _value(node.left), _value(node.right)
        if size(left, right) > _MAX_LOG10 + 1:  # one digit of slack for rounding: the result is checked too
            raise ValueError(f"result too large (beyond {_MAX_MAGNITUDE:g})")
        return _checked(compute(left, right))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and len(node.args) <= 2
    ):
        return _checked(_FUNCTIONS[node.func.id](*(_value(argument) for argument in node.args)))
    raise ValueError(f"unsupported element: {ast.dump(node)[:60]}")


async def evaluate(expression: str) -> float:
    """Evaluate an arithmetic expression: numbers, + - * / // % **, parentheses, pi, e, sqrt, sin, log..."""
    if not isinstance(expression, str):
        raise ValueError("the expression must be a string")
    if len(expression) > _MAX_LENGTH:
        raise ValueError(f"expression longer than {_MAX_LENGTH} characters")
    tree = ast.parse(expression.replace("^", "**"), mode="eval")
    try:
        return _value(tree.body)
    except OverflowError:  # exp(1000), 10.0**400: beyond a float
        raise ValueError("result too large") from None
