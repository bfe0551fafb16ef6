"""Arithmetic without eval: a small evaluator over Python's syntax tree."""

from __future__ import annotations

import ast
import math
import operator

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_DIGITS = 308  # round(x, n): beyond a float's range, n only makes Python build 10**|n| (round(1, -10**299) hangs)


def _round(number: float, digits: float = 0) -> float:
    if digits != int(digits) or abs(digits) > _MAX_DIGITS:
        raise ValueError(f"round's digits must be a whole number from -{_MAX_DIGITS} to {_MAX_DIGITS}")
    return round(number, int(digits))


_FUNCTIONS = {
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
_MAX_LENGTH = 200
_MAX_EXPONENT = 1000
_MAX_MAGNITUDE = 1e300


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large (limit {_MAX_EXPONENT})")
        result = _BINARY[type(node.op)](left, right)
        if abs(result) > _MAX_MAGNITUDE:
            raise ValueError("result too large")
        return result
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        result = _FUNCTIONS[node.func.id](*(_value(argument) for argument in node.args))
        if abs(result) > _MAX_MAGNITUDE:
            raise ValueError("result too large")
        return result
    raise ValueError(f"unsupported element: {ast.dump(node)[:60]}")


async def evaluate(expression: str) -> float:
    """Evaluate an arithmetic expression: numbers, + - * / // % **, parentheses, pi, e, sqrt, sin, log..."""
    if len(expression) > _MAX_LENGTH:
        raise ValueError(f"expression longer than {_MAX_LENGTH} characters")
    tree = ast.parse(expression.replace("^", "**"), mode="eval")
    try:
        return _value(tree.body)
    except OverflowError:  # exp(1000), 10.0**400: beyond a float
        raise ValueError("result too large") from None
