"""The package's layering: data flows data → processing → modeling → training / evaluation → hub, and no
module imports from a layer further right. Read from the source with `ast` (imports inside functions too)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "vidla_hf"

# Each subpackage and the subpackages it may import from (itself included).
ALLOWED = {
    # Hub remote code ships modeling/ (and processing/) on their own: they import nothing else of ours.
    "modeling": {"modeling"},
    "processing": {"processing"},
    # The stream applies a processor to every sample and reports its decoding errors.
    "data": {"data", "processing"},
    "evaluation": {"evaluation", "data", "processing", "modeling"},
    "pipelines": {"pipelines", "processing", "modeling"},
    "training": {"training", "evaluation", "data", "processing", "modeling"},
    "hub": {"hub", "pipelines", "processing", "modeling", "utils"},
    # ONNX graphs of the towers and their processor, served without the model code.
    "export": {"export", "processing", "modeling", "utils"},
    # Folder writes shared by hub and export; nothing of ours.
    "utils": {"utils"},
}


def imported_subpackages(path: Path) -> set[str]:
    """The `vidla_hf` subpackages `path` imports, resolving relative imports against its location."""
    module_parts = path.relative_to(PACKAGE.parent).with_suffix("").parts  # ("vidla_hf", "data", "streams")
    if module_parts[-1] == "__init__":
        module_parts = module_parts[:-1]
    package_parts = module_parts if path.name == "__init__.py" else module_parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
                names = [target] if node.module else [[*target, alias.name] for alias in node.names]
            else:
                names = [node.module.split(".")] if node.module else []
        elif isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        else:
            continue
        for name in names:
            if len(name) >= 2 and name[0] == "vidla_hf":
                found.add(name[1])
    return found


def test_every_subpackage_is_in_the_layering():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert subpackages == set(ALLOWED)


@pytest.mark.parametrize("subpackage", sorted(ALLOWED))
def test_no_import_goes_against_the_data_flow(subpackage):
    wrong = {
        str(path.relative_to(PACKAGE)): sorted(imported_subpackages(path) - ALLOWED[subpackage])
        for path in sorted((PACKAGE / subpackage).rglob("*.py"))
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_the_checker_sees_relative_and_absolute_imports():
    """The checker itself, on the shapes of import it must catch (so the test above cannot pass vacuously)."""
    module = PACKAGE / "data" / "streams.py"
    assert "processing" in imported_subpackages(module)
    assert imported_subpackages(PACKAGE / "training" / "loop.py") >= {"data", "evaluation"}
    assert "modeling" in imported_subpackages(PACKAGE / "training" / "losses.py")


def test_no_module_is_over_400_lines_except_the_modeling_file():
    """transformers keeps one modeling file per model, and so do we; every other module stays short."""
    long = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
        if path.name != "modeling_vidla.py"
    }
    assert {k: n for k, n in long.items() if n > 400} == {}
