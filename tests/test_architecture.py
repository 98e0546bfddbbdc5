"""The shape of the package (docs/ARCHITECTURE.md): imports run one way, no
import inside a function, every module declares its public names, no function
over 60 lines."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "neumf"
# Lower layers never import higher ones, nor others of their own layer.
LAYERS = (
    ("_version", "_util", "_interrupt", "_warn"),
    ("metrics", "tables", "scoring", "generate", "losses", "download", "plotting", "devices",
     "ease", "cpu", "presets", "_gluon", "service"),
    ("config", "interactions", "optim_state", "sparse"),
    ("sampling", "model", "evaluation", "training"),
    ("datasets", "runs", "recommend", "distributed"),
    ("callbacks", "resume", "export"),
    ("serving", "planning"),
    ("result",),
    ("experiment", "tutorial"),
    ("cli",),
    ("__init__", "__main__"),
)
LAYER = {module: depth for depth, modules in enumerate(LAYERS) for module in modules}
MAX_LINES = 60


def _modules():
    return sorted(PACKAGE.glob("*.py"))


def _tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def _package_imports(node):
    """Modules of the package a node imports (relative imports and ``neumf.x``)."""
    if isinstance(node, ast.ImportFrom):
        if node.level == 1:
            return [node.module] if node.module else [alias.name for alias in node.names]
        if node.module and node.module.split(".")[0] == "neumf":
            return [node.module.split(".")[1] if "." in node.module else "__init__"]
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[1] for alias in node.names
                if alias.name.startswith("neumf.")]
    return []


def test_every_module_has_a_layer():
    assert sorted(path.stem for path in _modules()) == sorted(LAYER)


@pytest.mark.parametrize("path", _modules(), ids=lambda path: path.stem)
def test_imports_run_one_way(path):
    upward = [(module, LAYER[module]) for node in _tree(path).body
              for module in _package_imports(node)
              if module != path.stem and LAYER[module] >= LAYER[path.stem]]
    assert upward == [], f"{path.stem} (layer {LAYER[path.stem]}) imports {upward}"


@pytest.mark.parametrize("path", _modules(), ids=lambda path: path.stem)
def test_no_function_imports_the_package(path):
    # optional third-party packages (matplotlib, IPython) are imported where used
    inner = [node.lineno for function in ast.walk(_tree(path))
             if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
             for node in ast.walk(function) if _package_imports(node)]
    assert inner == []


@pytest.mark.parametrize("path", [path for path in _modules()
                                  if path.stem not in ("__main__", "_version")],
                         ids=lambda path: path.stem)
def test_all_lists_the_public_names(path):
    tree = _tree(path)
    declared = next(ast.literal_eval(node.value) for node in tree.body
                    if isinstance(node, ast.Assign)
                    and any(getattr(target, "id", None) == "__all__" for target in node.targets))
    public = {node.name for node in tree.body
              if isinstance(node, (ast.FunctionDef, ast.ClassDef))
              and not node.name.startswith("_")}
    if path.stem != "__init__":
        assert public <= set(declared), sorted(public - set(declared))
    namespace = {}
    exec(compile(f"from neumf.{path.stem if path.stem != '__init__' else ''} import *"
                 .replace("neumf. import", "neumf import"), "<all>", "exec"), namespace)
    assert set(declared) <= set(namespace)


@pytest.mark.parametrize("path", _modules(), ids=lambda path: path.stem)
def test_no_function_over_60_lines(path):
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(_tree(path))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_LINES]
    assert long == []
