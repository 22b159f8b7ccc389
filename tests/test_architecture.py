"""The package's shape: imports run one way, no private names or attributes cross modules, every package says what it
holds, modules and functions stay small.

Run alone with ``python -m pytest tests/test_architecture.py -q``. Imports are
read from the source (``ast``), function-level ones included; imports under
``if TYPE_CHECKING:`` do not run and are not counted. The only upward imports
allowed are the lazy ones in Network's convenience methods (``save``,
``summary``, ``to_html``, ``to_onnx``, ``fit``), as Keras' ``Model.export`` does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mariana"
CONVENIENCE_METHODS = {("mariana.network", "Network", name) for name in ("save", "summary", "to_html", "to_onnx", "fit")}
#: A ceiling, not a target: one concept per module is the rule; a module past this has usually grown a second one.
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "node_modules" not in path.parts}


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(module: str) -> list[tuple[str, str, str | None]]:
    """(imported module, imported name or '', enclosing Class.function or None) for every executed import."""
    tree = ast.parse(MODULES[module].read_text())
    found: list[tuple[str, str, str | None]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child, scope)
            return
        where = ".".join(scope) if scope else None
        if isinstance(node, ast.Import):
            found.extend((alias.name, "", where) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.append((submodule, "", where) if submodule in MODULES else (node.module, alias.name, where))
        inner = scope + [node.name] if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else scope
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, [])
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for module in MODULES:
        for target, _, where in imports(module):
            if target not in MODULES or target == module:
                continue
            scope = tuple(where.split(".")) if where else ()
            if len(scope) == 2 and (module, *scope) in CONVENIENCE_METHODS:
                continue
            graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_package_modules():
    graph = import_graph()
    assert "mariana.execution" in graph["mariana.network"]  # the graph is really read
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_layers_do_not_import_what_sits_above_them():
    above = {"mariana.graph", "mariana.execution", "mariana.network", "mariana.persistence", "mariana.training"}
    for module in MODULES:
        if module.startswith("mariana.layers.") or module in {"mariana.checks", "mariana.files", "mariana.registry"}:
            reached = {target for target, _, _ in imports(module) if any(target.startswith(name) for name in above)}
            assert not reached, f"{module} imports {reached}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_name_is_imported_from_another_module(module):
    private = [(target, name) for target, name, _ in imports(module)
               if target.startswith("mariana") and target != module
               and (name.startswith("_") and not name.startswith("__") or any(part.startswith("_") and part != "__init__"
                                                                              for part in target.split(".")))]
    assert not private, f"{module} imports private names {private}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module):
    source = MODULES[module].read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{module} has {len(source.splitlines())} lines"
    long = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"


#: Private attributes of PyTorch's own classes that Mariana's modules rightly reach: an nn.Module's registries, which
#: Layer and the graph module manage as nn.Module subclasses, DDP's documented hook for parameters it must ignore, and
#: the DataLoader iterator's shutdown (what it runs when collected; the Dataset workers need it at a known time).
THIRD_PARTY_PRIVATE = {"_parameters", "_modules", "_buffers", "_set_params_and_buffers_to_ignore_for_model", "_shutdown_workers"}


def private_attributes_reached(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` of each ``obj._name`` whose ``_name`` this module does not define itself (a private of another)."""
    tree = ast.parse(source)
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            defined.add(node.attr)
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("__setattr__") and len(node.args) > 1 and (
                isinstance(node.args[1], ast.Constant)):
            defined.add(node.args[1].value)  # object.__setattr__(self, "_name", value)
    return [(node.lineno, node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
            and node.attr not in defined and node.attr not in THIRD_PARTY_PRIVATE]


def test_the_private_attribute_checker_sees_another_module_s_private():
    assert private_attributes_reached("def f(layer):\n    return layer._build()\n") == [(2, "_build")]
    assert private_attributes_reached("class A:\n    def __init__(self):\n        self._x = 1\n    def f(self, o):\n"
                                      "        return o._x\n") == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_attribute_of_another_module_is_reached(module):
    reached = private_attributes_reached(MODULES[module].read_text())
    assert not reached, f"{module} reaches private attributes defined elsewhere (make them public, or move the code): {reached}"


PACKAGES = sorted(name for name, path in MODULES.items() if path.name == "__init__.py")


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_says_what_it_holds_and_exports_only_what_it_has(package):
    tree = ast.parse(MODULES[package].read_text())
    assert ast.get_docstring(tree), f"{package}/__init__.py has no docstring saying what the package holds"
    bound = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
             for alias in node.names} | {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)} | {
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    bound |= {key.value for node in tree.body if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "_LAZY"
              for key in node.value.keys}  # names a package's __getattr__ imports on first use
    exported = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                and any(isinstance(target, ast.Name) and target.id == "__all__" for target in node.targets)]
    for names in exported:
        missing = [name for name in names if name not in bound]
        assert not missing, f"{package}.__all__ names {missing}, which the package does not define or import"
    outside = [target for target, _, _ in imports(package)
               if target.startswith("mariana") and package != "mariana" and not target.startswith(package + ".") and target != package]
    upward = [target for target in outside if package.startswith(target + ".")]
    assert not upward, f"{package}/__init__.py imports from the package above it: {upward}"


def test_every_folder_of_the_package_is_a_package():
    folders = {path.parent for path in PACKAGE.rglob("*.py") if "node_modules" not in path.parts}
    assert all((folder / "__init__.py").exists() for folder in folders), sorted(
        str(folder) for folder in folders if not (folder / "__init__.py").exists())


def test_test_files_share_helpers_through_the_helper_modules_not_through_each_other():
    borrowed = [(path.name, node.module) for path in Path(__file__).parent.rglob("test_*.py")
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and node.module and any(part.startswith("test_") for part in node.module.split("."))]
    assert not borrowed, f"test files import from other test files (move the helper to tests/helpers.py): {borrowed}"
