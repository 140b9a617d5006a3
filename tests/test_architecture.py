"""The package's layering (DESIGN.md section 1), checked on the source with ``ast``.

Rules that hold are asserted outright. Rules of the issue "One matrix layer" that do not
hold yet are asserted against frozen allow-lists of today's violations (``KNOWN_*`` below):
a new violation fails, and so does removing one without deleting its entry. These lists
must only shrink; never add to them.

An edge "a -> b" means module a imports fastlr module b (``from .x import y`` counts as an
import of ``x.y`` when that is a module, else of ``x``). Imports under ``if TYPE_CHECKING:``
do not run and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fastlr
from fastlr._backend import kernel_names

PACKAGE_DIR = Path(fastlr.__file__).parent
ROOT = PACKAGE_DIR.parent

#: Modules of the algorithm layer: never import kernels (``_kernels``, ``_core``).
ALGORITHMS = {"fastlr._gradients", "fastlr._training", "fastlr.batch", "fastlr.datadriven",
              "fastlr.datadriven._common", "fastlr.datadriven.fewshot", "fastlr.datadriven.positions",
              "fastlr.datadriven.subspace", "fastlr.evaluation", "fastlr.gd", "fastlr.gd.loop", "fastlr.gd.models",
              "fastlr.gd.optim", "fastlr.gd.options", "fastlr.gd.problems", "fastlr.gd.svd", "fastlr.learn",
              "fastlr.randomized", "fastlr.scw", "fastlr.streaming", "fastlr.tolerance"}
#: Sketch operators: never import algorithms.
SKETCHES = {"fastlr.sketch", "fastlr.learned_sketch", "fastlr.sketch_file"}

#: Modules that may call the matrix kernels (every product with a user's matrix goes through the matrix layer).
MATRIX_LAYER = "fastlr/_matrix/"
#: Kernels that are not products with a matrix: the CountSketch hash and the optimizer steps.
NON_MATRIX_KERNELS = {"countsketch_hash", "optimizer_step", "build_info", "num_threads", "set_num_threads"}

#: Calls of matrix kernels outside the matrix layer: (file, kernel).
KNOWN_MATRIX_KERNEL_CALLS = set()

#: Kernel modules importing fastlr outside ``_kernels``: the Numba kernels' thread count.
KNOWN_KERNEL_IMPORTS = set()

#: Algorithm modules importing kernels directly.
KNOWN_ALGORITHM_KERNEL_IMPORTS = set()

#: Sketch modules importing algorithms.
KNOWN_SKETCH_ALGORITHM_IMPORTS = set()

#: Import cycles (strongly connected components of the import graph, function-local imports included;
#: module-level imports alone form none).
KNOWN_CYCLES = {
    frozenset({"fastlr", "fastlr.estimators"}),
}

#: Function-local imports of fastlr modules: (file, imported module).
KNOWN_LOCAL_IMPORTS = {
    ("fastlr/__init__.py", "fastlr.estimators"),
    ("fastlr/_cli_io.py", "fastlr.datasets"),
    ("fastlr/cli.py", "fastlr"),
    ("fastlr/cli.py", "fastlr.datasets"),
    ("fastlr/cli.py", "fastlr.demo"),
    ("fastlr/estimators.py", "fastlr"),
    ("fastlr/estimators.py", "fastlr.sketch"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, inside_function: bool = False):
    """(import node, inside a function) for every import that runs, in source order."""
    for node in ast.iter_child_nodes(tree):
        if _is_type_checking(node):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, inside_function
        yield from _imports(node, inside_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                        ast.Lambda)))


def _targets(node, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The fastlr modules an import node imports."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name == "fastlr" or a.name.startswith("fastlr.")}
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not (target == "fastlr" or target.startswith("fastlr.")):
        return set()
    return {f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names}


def _edges():
    """(file, module, imported module, inside a function) for every import of a fastlr module."""
    modules = _modules()
    known = set(modules)
    out = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(ROOT).as_posix()
        for node, local in _imports(tree):
            for target in _targets(node, module, path.name == "__init__.py", known):
                out.append((rel, module, target, local))
    return out


EDGES = _edges()


def _cycles(edges) -> set[frozenset]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for _, a, b, _ in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index, low, stack, on_stack, found = {}, {}, [], set(), set()

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_is_read():
    """The parser sees the imports it should (guards the rules below against an empty graph)."""
    pairs = {(a, b) for _, a, b, _ in EDGES}
    assert ("fastlr.scw", "fastlr._linalg") in pairs
    assert ("fastlr._kernels.numba.products", "fastlr._kernels.reference.products") in pairs
    assert ("fastlr", "fastlr.scw") in pairs


def test_linalg_imports_no_fastlr_module():
    assert [(b, local) for _, a, b, local in EDGES if a == "fastlr._linalg"] == []


def test_kernels_import_only_kernels():
    found = {(f, b) for f, a, b, _ in EDGES if a.startswith("fastlr._kernels") and not b.startswith("fastlr._kernels")}
    assert found == KNOWN_KERNEL_IMPORTS


def test_algorithms_never_import_kernels():
    found = {(f, b) for f, a, b, _ in EDGES
             if a in ALGORITHMS and (b.startswith("fastlr._kernels") or b == "fastlr._core")}
    assert found == KNOWN_ALGORITHM_KERNEL_IMPORTS


def test_sketch_operators_never_import_algorithms():
    assert {(f, b) for f, a, b, _ in EDGES if a in SKETCHES and b in ALGORITHMS} == KNOWN_SKETCH_ALGORITHM_IMPORTS


def test_module_level_imports_form_no_cycle():
    assert _cycles([e for e in EDGES if not e[3]]) == set()


def test_import_cycles_only_shrink():
    assert _cycles(EDGES) == KNOWN_CYCLES


def test_function_local_imports_only_shrink():
    assert {(f, b) for f, _, b, local in EDGES if local} == KNOWN_LOCAL_IMPORTS


def _matrix_kernel_calls():
    """(file, kernel) for every call ``x.<kernel>(...)`` of a matrix kernel outside the kernels and the matrix layer."""
    names = set(kernel_names()) - NON_MATRIX_KERNELS
    found = set()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((MATRIX_LAYER, "fastlr/_kernels/")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names
                    and _is_backend(node.func.value)):
                found.add((rel, node.func.attr))
    return found


def _is_backend(node) -> bool:
    """A kernel module: ``kernels``, ``self.kernels``, ``get_backend(...)``, ``_core`` (operands' own
    methods share the kernels' names and are not counted)."""
    if isinstance(node, ast.Call):
        return getattr(node.func, "id", getattr(node.func, "attr", None)) == "get_backend"
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.endswith("kernels") or name in ("_core", "core", "REF", "backend_module")


def test_only_the_matrix_layer_calls_matrix_kernels():
    names = set(kernel_names())
    assert {"matmul", "countsketch_dense", "gd_products"} <= names  # the rule checks real kernel names
    assert _matrix_kernel_calls() == KNOWN_MATRIX_KERNEL_CALLS
