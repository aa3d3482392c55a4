"""The package's layers (README, "How the code is laid out"): every import, lazy ones included,
points down or sideways, never up, and no module imports itself back through others."""

import ast
from pathlib import Path

import ferkit

ROOT = Path(ferkit.__file__).parent

#: Each module's layer, lowest first. A new module must be placed here.
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        [
            "labels",
            "atomic",
            "argtypes",
            "device",
            "images",
            "detect",
            "losses",
            "geometry",
            "models",
            "models.bk",
            "models.norm",
            "models.registry",
        ],
        0,
    ),
    **dict.fromkeys(
        ["preprocess", "views", "augment", "data", "temperature", "figures", "train_config"], 1
    ),
    **dict.fromkeys(["model", "quantize", "checkpoint", "onnx_model", "run_folder"], 2),
    **dict.fromkeys(
        [
            "predict",
            "annotate",
            "evaluate",
            "train",
            "export",
            "batch",
            "ray_engine",
            "reproduce",
            "reproduce.catalogue",
            "reproduce.runner",
            "reproduce.report",
            "benchmark",
            "serve",
            "serve.batcher",
            "serve.app",
        ],
        3,
    ),
    **dict.fromkeys(["cli", ""], 4),  # "" is the package itself (ferkit/__init__.py)
}


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the ferkit modules it imports anywhere in its body."""
    files = {_name(p): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module + ".").startswith("ferkit."):
                target = node.module.removeprefix("ferkit").lstrip(".")
            else:
                continue
            subs = {f"{target}.{a.name}".lstrip(".") for a in node.names}
            found = subs & files.keys()
            deps |= found if found else ({target} & files.keys())
        deps.discard(name)
        graph[name] = deps
    return graph


def test_every_module_has_a_layer():
    assert set(import_graph()) == set(LAYERS)


def test_no_upward_import():
    up = [
        f"{m or 'ferkit'} (layer {LAYERS[m]}) imports {d or 'ferkit'} (layer {LAYERS[d]})"
        for m, deps in import_graph().items()
        for d in deps
        # the package root is imported first anyway; modules take only __version__ from it
        if d and LAYERS[d] > LAYERS[m]
    ]
    assert not up, up


def test_no_import_loop():
    graph = {m: {d for d in deps if d} for m, deps in import_graph().items()}
    loops, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                loops.append(" -> ".join([*path[path.index(d) :], m, d]))
            elif d not in state:
                visit(d, [*path, m])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not loops, loops
