"""The import rules of the tree (README "Architecture"), checked on every module's imports,
including the ones inside functions:

- the core (``app/*.py`` but the entry points) imports only the core;
- ``app/training`` imports the core and itself;
- ``app/serving`` imports the core and itself, never training (a retrain is a child process
  started by name: ``python -m app.train``);
- ``app/api`` imports the core, serving and itself;
- ``app/protocols`` (the Open Inference Protocol) imports the core, serving, api and itself;
- ``app/cluster`` (the Ray Serve adapter) reaches across like an entry point, to reuse serving,
  api and the app factory, but not training: its retrain is a Ray task running the trainer by
  name;
- only the entry points (``app/main.py``, ``app/serve.py``, ``app/train.py``,
  ``app/evaluate.py``) reach across.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

APP = REPO / "app"
ENTRY_POINTS = frozenset({"main", "serve", "train", "evaluate"})
LAYERS = frozenset({"core", "training", "serving", "api", "protocols", "cluster"})
# The packages of the new tree, in the layers of the old one until the rules are rewritten.
PACKAGE_LAYER = {
    "store": "core",
    "ml": "core",
    "inference": "serving",
    "jobs": "serving",
    "dataset": "serving",
    "observability": "serving",
    "http": "api",
    "v2": "protocols",
}
MODULE_LAYER = {"app.dataset.layout": "core", "app.http.v2": "protocols"}
ALLOWED = {
    "core": {"core"},
    "training": {"core", "training"},
    "serving": {"core", "serving"},
    "api": {"core", "serving", "api"},
    "protocols": {"core", "serving", "api", "protocols"},
    "cluster": {"core", "serving", "api", "protocols", "entry", "cluster"},
    "entry": {"core", "training", "serving", "api", "protocols", "entry"},
}


def layer_of(module: str, app: Path = APP) -> str:
    """``app.jobs.runner`` -> serving; ``app.store.versions`` -> core; ``app.main`` -> entry."""
    parts = module.split(".")
    if len(parts) == 1:
        return "core"  # `import app` itself
    if parts[1] in ENTRY_POINTS:
        return "entry"
    if ".".join(parts[:3]) in MODULE_LAYER:
        return MODULE_LAYER[".".join(parts[:3])]
    if parts[1] in PACKAGE_LAYER:
        return PACKAGE_LAYER[parts[1]]
    if (app / parts[1]).is_dir():
        if parts[1] not in LAYERS:
            raise AssertionError(f"app/{parts[1]}/ has no declared layer: add it to this test")
        return parts[1]
    return "core"


def module_name(path: Path, app: Path = APP) -> str:
    relative = path.relative_to(app.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported_modules(path: Path, app: Path = APP) -> list[tuple[int, str]]:
    """(line, module) for every import of an ``app`` module in the file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += _from_import(node, app)
    return [(line, name) for line, name in found if name == "app" or name.startswith("app.")]


def _from_import(node: ast.ImportFrom, app: Path) -> list[tuple[int, str]]:
    module = node.module or ""
    # `from app import training` imports the module app.training, not names of app
    if module == "app" or (app / Path(*module.split(".")[1:])).is_dir():
        return [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return [(node.lineno, module)]


def violations(app: Path = APP) -> list[str]:
    found = []
    for path in sorted(app.rglob("*.py")):
        layer = layer_of(module_name(path, app), app)
        for line, imported in imported_modules(path, app):
            target = layer_of(imported, app)
            if target not in ALLOWED[layer]:
                where = path.relative_to(app.parent)
                found.append(f"{where}:{line}: {layer} imports {imported} ({target})")
    return found


def test_every_import_follows_the_layer_rules() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("app.store.versions", "core"),
        ("app.training.pipeline", "training"),
        ("app.jobs.runner", "serving"),
        ("app.http.admin", "api"),
        ("app.http.v2", "protocols"),
        ("app.cluster.model_deployment", "cluster"),
        ("app.train", "entry"),
    ],
)
def test_modules_are_placed_in_their_layer(module: str, layer: str) -> None:
    assert layer_of(module) == layer


def test_a_serving_module_importing_training_is_reported(tmp_path: Path) -> None:
    app = tmp_path / "app"
    for layer in ("serving", "training", "api"):
        (app / layer).mkdir(parents=True)
    (app / "store.py").write_text("import json\n")
    (app / "serving" / "jobs.py").write_text(
        "def f() -> None:\n    from app.training import pipeline\n"
    )
    (app / "api" / "routes.py").write_text("from app.serving import jobs\nfrom app import store\n")
    (app / "store2.py").write_text("from app.api.routes import x\n")
    assert violations(app) == [
        "app/serving/jobs.py:2: serving imports app.training.pipeline (training)",
        "app/store2.py:1: core imports app.api.routes (api)",
    ]


def test_the_app_factory_imports_no_tensorflow() -> None:
    """The cluster's Ingress replicas build the app and never load a model: no 500 MB import."""
    import subprocess
    import sys

    probe = "import sys, app.main; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
