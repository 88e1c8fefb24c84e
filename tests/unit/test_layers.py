"""One-way layers: every module of phphost may import only from its own layer or the
layers below it, and the modules import no cycle (not even through a function-level
import). docs/architecture.md describes the same table.

A layer is a package (phphost/spec/) or a top-level module (phphost/layout.py).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "phphost"

# lowest first; a layer imports only from layers before it (and from itself)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("exitcodes",),
    ("errors",),
    ("layout",),
    ("safefs",),
    ("runner", "files", "forked"),
    ("launcher",),       # standalone: imports nothing from phphost (see below)
    ("fastcgi",),
    ("spec",),
    ("render",),
    ("jail",),           # pure jail logic
    ("facts",),
    ("plan",),
    ("host",),
    ("audit", "monitor", "verify"),
    ("check", "importer"),
    ("cli",),
)
STANDALONE = frozenset({"launcher"})   # installed as single stdlib-only files
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every phphost import in the file, at any depth; `from
    phphost import x` counts as phphost.x."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            names = [f"{base}.{a.name}" if base == "phphost" else base for a in node.names]
        else:
            continue
        for name in names:
            if name == "phphost" or name.startswith("phphost."):
                yield node.lineno, name


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def graph() -> dict[str, list[tuple[int, str]]]:
    modules = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    out: dict[str, list[tuple[int, str]]] = {}
    for name, path in modules.items():
        edges = []
        for line, target in imported(path, name):
            # `from phphost.x import y`: y may be a module of phphost.x or a name in it
            found = target if target in modules else target.rpartition(".")[0]
            while found not in modules and "." in found:
                found = found.rpartition(".")[0]
            edges.append((line, found))
        out[name] = edges
    return out


def test_every_unit_has_a_layer() -> None:
    units = {unit_of(m) for m in graph()} - {""}
    assert sorted(units - set(RANK)) == []


def test_no_upward_import() -> None:
    bad = []
    for module, edges in graph().items():
        unit = unit_of(module)
        for line, target in edges:
            dest = unit_of(target)
            if not unit or not dest or dest == unit:
                continue
            if unit in STANDALONE:
                bad.append(f"{module}:{line} imports {target}: {unit} imports nothing from phphost")
            elif RANK[dest] >= RANK[unit]:
                bad.append(f"{module}:{line} imports {target}: layer {dest} is not below {unit}")
    assert bad == []


def test_standalone_units_import_nothing_of_phphost() -> None:
    bad = [f"{m}:{line} imports {t}" for m, edges in graph().items()
           if unit_of(m) in STANDALONE for line, t in edges if unit_of(t) not in STANDALONE]
    assert bad == []


def test_no_import_cycle() -> None:
    edges = {m: sorted({t for _, t in es if t != m}) for m, es in graph().items()}
    lines = {(m, t): line for m, es in graph().items() for line, t in es}
    state: dict[str, int] = {}       # 1 = on the stack, 2 = done
    cycles: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                loop = [*stack[stack.index(nxt):], nxt]
                cycles.append(" -> ".join(f"{a}:{lines[(a, b)]}"
                                          for a, b in itertools.pairwise(loop)) + f" -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    assert cycles == []


def test_the_checker_sees_upward_and_relative_imports(tmp_path: Path) -> None:
    src = tmp_path / "x.py"
    src.write_text("from phphost import layout\nfrom . import peer\n"
                   "def f():\n    from phphost.cli.main import main\n")
    got = sorted(imported(src, "phphost.jail.x"))
    assert got == [(1, "phphost.layout"), (2, "phphost.jail"), (4, "phphost.cli.main")]


def test_architecture_doc_has_the_same_layers() -> None:
    """docs/architecture.md's table lists the layers in this order (row number,
    then the packages and modules of the row)."""
    text = (SRC.parent / "docs" / "architecture.md").read_text()
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 4 and (cells[0].isdigit() or cells[0] == "-"):
            names = tuple(n.removesuffix(".py").rstrip("/") for n in cells[1].split("`")[1::2])
            rows.append((cells[0], names))
    numbered = tuple(names for rank, names in rows if rank != "-")
    assert numbered == tuple(layer for layer in LAYERS if set(layer).isdisjoint(STANDALONE))
    assert {n for rank, names in rows if rank == "-" for n in names} == STANDALONE


# Module-level constants outside layout.py that name absolute paths, and why they are
# not host paths phphost keeps or uses as the host's.
NOT_HOST_PATHS = {
    ("importer/tenants.py", "SHARED_PARENTS"): "dirs many docroots share (never a tenant home)",
    ("jail/closure.py", "SEARCH_PATH"): "where a jailed program's interpreter is looked up",
    ("jail/features.py", "ZONEINFO"): "jail content (at the host's path)",
    ("jail/features.py", "LOCALE_DIR"): "jail content (at the host's path)",
    ("jail/features.py", "MYSQL_RUN_DIR"): "jail mount target",
    ("jail/features.py", "OPENSSL_CNF"): "jail content (at the host's path)",
    ("jail/features.py", "OPENSSLDIR_LINKS"): "jail content (at the host's path)",
    ("jail/features.py", "SHELL"): "jail content (at the host's path)",
    ("jail/features.py", "BIN_SH"): "jail content",
    ("jail/features.py", "DNS_FILES"): "jail content (at the host's path)",
    ("jail/features.py", "DNS_OPTIONAL"): "jail content (at the host's path)",
    ("jail/features.py", "SHARE"): "where the phplibs feature looks for php-NAME dirs",
    ("jail/features.py", "PHPLIBS_DIRS"): "jail mounts (at the host's path)",
    ("jail/hints.py", "PROVIDERS"): "paths inside a jail and the feature bringing them",
    ("jail/hints.py", "MOUNTABLE"): "where a mount is suggested (a rule)",
    ("jail/manifest.py", "ALLOWED_DEVICES"): "device nodes inside a jail",
    ("monitor/peer.py", "PROC_TCP"): "the kernel's socket table",
    ("spec/loader.py", "FORBIDDEN_HOME_ROOTS"): "where no tenant home may be (a rule)",
    ("spec/pools.py", "_SHARED_TMP"): "where no pool socket may be (a rule)",
    ("verify/attacks_answers.py", "POOL_TMP"): "a pool's view (attack)",
    ("verify/attacks_answers.py", "VICTIM_PARENT"): "an attack's victim",
    ("verify/attacks_jail.py", "ALLOWED_DEVICES"): "device nodes inside a jail (attack)",
    ("verify/attacks_jail.py", "ESCAPES"): "attack paths",
}
PATH_ROOTS = ("/etc", "/var", "/run", "/usr", "/srv", "/opt", "/sys", "/proc", "/bin", "/sbin",
              "/lib", "/root", "/tmp", "/dev", "/home")


def _strings(node: ast.AST) -> Iterator[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value


def test_host_paths_live_in_layout() -> None:
    """Every module-level constant naming a host path is layout.py's (the launcher, a
    single stdlib-only file, takes its paths as arguments)."""
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "layout.py" or rel.startswith("launcher/"):
            continue
        for node in ast.parse(path.read_text()).body:
            target = (node.targets[0] if isinstance(node, ast.Assign)
                      else node.target if isinstance(node, ast.AnnAssign) else None)
            if isinstance(target, ast.Name) and node.value is not None and any(
                    s.startswith(PATH_ROOTS) for s in _strings(node.value)):
                found.add((rel, target.id))
    assert sorted(found - set(NOT_HOST_PATHS)) == []
    assert sorted(set(NOT_HOST_PATHS) - found) == []
