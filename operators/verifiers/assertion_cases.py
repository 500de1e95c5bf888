"""Assertion tests (HumanEval `check(candidate)`, MBPP `test_list`) read with `ast`, so that pass or
fail is decided where candidate code cannot run.

A test made only of simple assertions, `assert f(ARGS) == EXPECTED` and the like (`is True`,
`not f(...)`, `abs(f(...) - X) < EPS`, `math.isclose(f(...), X)`, `set(f(...)) == set(...)`), with
literal arguments and one call of the function under test each, becomes call cases: the sandbox
gets only the arguments, and the host evaluates each assertion on the plain data the program
returned. Any other test code runs in the sandbox's harness process, which holds no candidate
code, on proxies of the program's functions (`ScriptTest`).
"""

from __future__ import annotations

import ast
import builtins
import math
import symtable
import sys
from dataclasses import dataclass, field
from types import CodeType, SimpleNamespace
from typing import Any

RESULT = "__result__"
_PURE_FUNCTIONS: dict[str, Any] = {
    name: getattr(builtins, name)
    for name in ("abs", "all", "any", "bool", "float", "frozenset", "int", "len", "list", "max", "min", "round",
                 "set", "sorted", "str", "sum", "tuple")
}
_MATH = {"isclose": math.isclose, "fabs": math.fabs}
_NODES = (
    ast.Expression, ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Div, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Name,
    ast.Load, ast.Call, ast.keyword, ast.Attribute,
    ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot,
)


@dataclass(frozen=True, slots=True)
class CallCase:
    fn: str | None
    """the function called; None: the program's only public method (LiveCodeBench)"""
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AssertionCheck:
    """One assertion with the call of the function under test replaced by its result."""

    source: str
    code: CodeType
    uses_math: bool

    def holds(self, result: Any) -> bool:
        """Evaluated on the host over plain data with pure builtins only (the expression was
        checked node by node, see `_check_nodes`)."""
        names: dict[str, Any] = {"__builtins__": {}, **_PURE_FUNCTIONS, RESULT: result}
        if self.uses_math:
            names["math"] = SimpleNamespace(**_MATH)
        return bool(eval(self.code, names))


@dataclass(frozen=True, slots=True)
class ScriptTest:
    """Test code to run in the harness process: which of its free names are the program's functions
    (proxied) and which are standard modules the test uses without importing them."""

    code: str
    entry_point: str | None
    proxied: tuple[str, ...]
    modules: tuple[str, ...]


class _NotSimple(Exception):
    pass


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _NotSimple from None


def _check_nodes(expression: ast.Expression, imported_math: bool) -> None:
    for node in ast.walk(expression):
        if not isinstance(node, _NODES):
            raise _NotSimple
        if isinstance(node, ast.Name) and node.id != RESULT and node.id not in _PURE_FUNCTIONS and node.id != "math":
            raise _NotSimple
        if isinstance(node, ast.Name) and node.id == "math" and not imported_math:
            raise _NotSimple
        if isinstance(node, ast.Attribute) and not (
            isinstance(node.value, ast.Name) and node.value.id == "math" and node.attr in _MATH
        ):
            raise _NotSimple
        if isinstance(node, ast.Compare):
            for op, left, right in zip(node.ops, [node.left, *node.comparators], node.comparators, strict=False):
                # Identity is meaningful on plain data only against the singletons.
                if isinstance(op, ast.Is | ast.IsNot) and not any(
                    isinstance(side, ast.Constant) and any(side.value is s for s in (None, True, False))
                    for side in (left, right)
                ):
                    raise _NotSimple
        if isinstance(node, ast.Call) and any(isinstance(a, ast.Starred) for a in node.args):
            raise _NotSimple


class _CallFinder(ast.NodeTransformer):
    def __init__(self, functions: dict[str, str]) -> None:
        self.functions = functions
        self.case: CallCase | None = None

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if isinstance(node.func, ast.Name) and node.func.id in self.functions:
            if self.case is not None or any(isinstance(a, ast.Starred) for a in node.args):
                raise _NotSimple
            if any(k.arg is None for k in node.keywords):
                raise _NotSimple
            self.case = CallCase(
                fn=self.functions[node.func.id],
                args=tuple(_literal(a) for a in node.args),
                kwargs={k.arg: _literal(k.value) for k in node.keywords if k.arg},
            )
            return ast.copy_location(ast.Name(id=RESULT, ctx=ast.Load()), node)
        return self.generic_visit(node)


def _simple_assertion(statement: ast.Assert, functions: dict[str, str],
                      imported_math: bool) -> tuple[CallCase, AssertionCheck] | None:
    """None for an assertion that holds whatever the program does (`assert True, "..."`)."""
    if isinstance(statement.test, ast.Constant):
        if statement.test.value:
            return None
        raise _NotSimple
    finder = _CallFinder(functions)
    expression = ast.Expression(body=finder.visit(ast.parse(ast.unparse(statement.test), mode="eval").body))
    if finder.case is None:
        raise _NotSimple
    _check_nodes(expression, imported_math)
    ast.fix_missing_locations(expression)
    check = AssertionCheck(source=ast.unparse(statement)[:200], code=compile(expression, "<assert>", "eval"),
                           uses_math=imported_math)
    return finder.case, check


def _free_names(code: str) -> set[str]:
    """Names the test reads but never binds: the program's functions, or modules it assumes."""
    table = symtable.symtable(code, "tests.py", "exec")
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    read: set[str] = set()
    stack = [table]
    while stack:
        scope = stack.pop()
        for symbol in scope.get_symbols():
            if symbol.is_referenced() and (scope is table or symbol.is_global()):
                read.add(symbol.get_name())
        stack.extend(scope.get_children())
    return {name for name in read - bound if not hasattr(builtins, name)}


def script_test(code: str, entry_point: str | None) -> ScriptTest:
    free = _free_names(code)
    modules = tuple(sorted(n for n in free if n in sys.stdlib_module_names))
    proxied = tuple(sorted(n for n in free if n not in sys.stdlib_module_names))
    return ScriptTest(code=code, entry_point=entry_point, proxied=proxied, modules=modules)


def call_cases(code: str, entry_point: str | None) -> list[tuple[CallCase, AssertionCheck]] | None:
    """The test as call cases, or None when it is not made of simple assertions only (or has none)."""
    module = ast.parse(code)
    free = _free_names(code)
    functions = {name: name for name in free if name not in sys.stdlib_module_names}
    imported_math = False
    statements: list[ast.stmt] = []
    for node in module.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            imported_math = imported_math or any(a.name == "math" and a.asname is None for a in node.names
                                                 if isinstance(node, ast.Import))
        elif isinstance(node, ast.FunctionDef) and node.name == "check" and entry_point:
            arguments = node.args
            if len(arguments.args) != 1 or arguments.vararg or arguments.kwarg or arguments.kwonlyargs \
                    or node.decorator_list:
                return None
            functions[arguments.args[0].arg] = entry_point
            statements += node.body
        elif isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets):
            try:  # METADATA = {...}: data the assertions do not read (they may read only literals)
                ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                return None
        else:
            statements.append(node)
    cases = []
    try:
        for statement in statements:
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant | ast.Name) and (
                not isinstance(statement.value, ast.Name) or hasattr(builtins, statement.value.id)
            ):
                continue  # a docstring, or a bare `print`
            if isinstance(statement, ast.Pass):
                continue
            if not isinstance(statement, ast.Assert):
                return None
            case = _simple_assertion(statement, functions, imported_math)
            if case is not None:
                cases.append(case)
    except _NotSimple:
        return None
    return cases or None
