"""The lint rules: each inspects a parsed DAG file and yields findings."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

IO_CALLS = {"connect", "get", "post", "urlopen", "execute", "read_sql"}
CLOCK_CALLS = {"now", "today", "utcnow"}
VAGUE_TASK_IDS = {"process", "run", "do_it", "handle", "main"}


@dataclass(frozen=True)
class Finding:
    """One rule violation at one line of one file."""

    path: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code} {self.message}"


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def module_level_io(path: str, tree: ast.Module) -> Iterator[Finding]:
    """DC001: network or database calls outside any function."""
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(stmt):
            if isinstance(node, ast.Call) and _call_name(node) in IO_CALLS:
                yield Finding(
                    path, node.lineno, "DC001", f"I/O at import time ({_call_name(node)})"
                )


def wall_clock_in_tasks(path: str, tree: ast.Module) -> Iterator[Finding]:
    """DC002: datetime.now() and friends inside functions."""
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Call) and _call_name(node) in CLOCK_CALLS:
                yield Finding(
                    path, node.lineno, "DC002", "wall-clock time in a task; use the data interval"
                )


def vague_task_ids(path: str, tree: ast.Module) -> Iterator[Finding]:
    """DC003: task ids that do not say what they produce."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.keyword) or node.arg != "task_id":
            continue
        value = node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            name = value.value
            if name in VAGUE_TASK_IDS or name.startswith("task_"):
                yield Finding(path, value.lineno, "DC003", f"vague task id {name!r}")


RULES = (module_level_io, wall_clock_in_tasks, vague_task_ids)


def check_source(path: str, source: str) -> list[Finding]:
    """All findings for one DAG file, sorted by line."""
    tree = ast.parse(source, filename=path)
    findings = [f for rule in RULES for f in rule(path, tree)]
    return sorted(findings, key=lambda f: (f.line, f.code))
