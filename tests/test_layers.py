"""Layers: the engine (faceqan) imports nothing of FiftyOne or of the plugin's package, anywhere in its code,
and no module of faceqan or fiftyone_faceqan imports itself back through others. The code is parsed, not
imported, so imports inside functions count as much as those at the top."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path) -> set[str]:
    """Every absolute name the file imports, relative imports resolved; `from a import b` gives a and a.b
    (b may be a module)."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """module -> the other names it imports, for every module of the packages."""
    return {module_name(path, root): imported(path, root) - {module_name(path, root)}
            for package in packages for path in sorted((root / package).rglob("*.py"))}


def importing_fiftyone(graph: dict[str, set[str]]) -> list[str]:
    """The modules that import fiftyone, fiftyone_faceqan or anything else named fiftyone*."""
    return sorted(module for module, names in graph.items() if any(n.startswith("fiftyone") for n in names))


def in_cycles(graph: dict[str, set[str]]) -> list[str]:
    """The modules that import themselves back through the modules they import."""
    def reached(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for name in graph[todo.pop()] & graph.keys():
                if name not in seen:
                    seen.add(name)
                    todo.append(name)
        return seen

    return sorted(module for module in graph if module in reached(module))


def test_the_engine_imports_nothing_of_fiftyone_anywhere():
    graph = import_graph(REPO, ("faceqan",))
    assert "faceqan.erc_cli" in graph["faceqan.cli"] and "faceqan.align" in graph["faceqan.cli"]  # lazy ones too
    assert importing_fiftyone(graph) == []


def test_no_module_imports_itself_back():
    graph = import_graph(REPO, ("faceqan", "fiftyone_faceqan"))
    assert "faceqan.models.sface" in graph["faceqan.models"]  # `from . import sface` is a module import
    assert in_cycles(graph) == []


def test_the_checks_find_what_they_look_for(tmp_path):
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "__init__.py").write_text("from .a import run\n")
    (engine / "a.py").write_text("def run():\n    from .b import helper\n    import fiftyone.zoo\n")
    (engine / "b.py").write_text("from engine import a\n\n\ndef helper():\n    from fiftyone_faceqan.demo import main\n")
    (engine / "c.py").write_text("from . import b\n")
    graph = import_graph(tmp_path, ("engine",))
    assert importing_fiftyone(graph) == ["engine.a", "engine.b"]
    assert in_cycles(graph) == ["engine", "engine.a", "engine.b"]  # b imports the package, which imports a
