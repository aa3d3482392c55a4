"""The package's layers (README, "How the code is laid out"): every import, lazy ones included,
points down or sideways, never up, and no module imports itself back through others."""

import ast
from pathlib import Path

import ferkit

ROOT = Path(ferkit.__file__).parent

#: Each top-level package (a folder) or foundation module, and its layer, lowest first: a
#: module's layer is its folder's. A new folder or top-level module must be placed here.
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        [
            "labels",
            "atomic",
            "argtypes",
            "userfiles",
            "console",
            "device",
            "images",
            "geometry",
            "losses",
            "figures",
        ],
        0,
    ),
    **dict.fromkeys(["models", "data"], 1),
    "fermodel": 2,
    **dict.fromkeys(["training", "evaluation"], 3),
    **dict.fromkeys(["predict", "export"], 4),
    **dict.fromkeys(["serve", "reproduce", "benchmark"], 5),
    **dict.fromkeys(["cli", ""], 6),  # "" is the package itself (ferkit/__init__.py)
}


def layer(module: str) -> int:
    """The layer of a module: that of its top-level package or its own."""
    return LAYERS[module.split(".")[0]]


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
    assert {m.split(".")[0] for m in import_graph()} == set(LAYERS)


def test_no_upward_import():
    up = [
        f"{m or 'ferkit'} (layer {layer(m)}) imports {d or 'ferkit'} (layer {layer(d)})"
        for m, deps in import_graph().items()
        for d in deps
        # the package root is imported first anyway; modules take only __version__ from it
        if d and layer(d) > layer(m)
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


def test_the_command_line_and_every_help_answer_without_torch_or_numpy():
    """`ferkit --help` and `ferkit COMMAND --help` are instant: nothing heavy is imported."""
    import subprocess
    import sys

    from ferkit.cli.main import command_names

    code = (
        "import sys\n"
        "from ferkit.cli.main import main\n"
        "for argv in [['--help']] + [[c, '--help'] for c in sys.argv[1:]]:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *command_names()], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "HEAVY []"
