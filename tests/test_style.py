"""House rules a linter does not check."""

import ast
import pathlib
import re

import neumf

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _python_files():
    for folder in ("neumf", "tests", "examples", "benchmarks"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_comprehension_used_for_its_side_effects():
    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Expr) and isinstance(
                node.value, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
            ):
                found.append(f"{path}:{node.lineno}")
    assert found == []


def test_public_api_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in neumf.__all__ if not re.search(rf"`{name}\b", readme)]
    assert missing == []


def test_init_only_lists_the_api():
    tree = ast.parse((ROOT / "neumf" / "__init__.py").read_text())
    kinds = {type(node).__name__ for node in tree.body}
    assert kinds <= {"Expr", "ImportFrom", "Assign"}
