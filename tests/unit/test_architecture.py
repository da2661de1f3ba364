"""The import rules of the tree (README "Architecture"), checked on every module's imports,
including the ones inside functions and those for type checking only:

- the core (``app/*.py`` but the entry points and ``errors``; ``store/``; ``observability/``)
  imports only the core;
- ``ml/`` (the network, engines, devices) imports the core;
- ``dataset/`` imports the core; ``jobs/`` imports the core;
- ``training/`` imports the core, ``ml/`` and ``dataset/``;
- ``inference/`` imports the core and ``ml/``, never ``http/``, ``training/`` or ``jobs/``;
- ``app/errors.py`` (the refusal table) imports the domain it maps: the core, ``inference/``,
  ``jobs/`` and ``dataset/``;
- ``v2/`` (the Open Inference Protocol) imports the core, ``errors`` and ``inference/``, never
  ``http/``;
- ``http/`` imports everything above but ``ml/`` and ``training/`` (a retrain is a child process
  started by name: ``python -m app.train``);
- ``scoring/`` (``flowers-predict``'s work: files, a local engine, a server's API, the output)
  imports the core, ``ml/`` and ``inference/`` (the engine and its loader: inside the function
  that loads, for types elsewhere);
- ``cluster/`` (the Ray Serve adapter) reaches across like an entry point, to reuse the service,
  but not into ``training/`` (its retrain is a Ray task running the trainer by name);
- only the entry points (``main``, ``serve``, ``train``, ``evaluate``, ``predict``) reach
  everywhere.

And one rule about weight: ``ml/`` (TensorFlow, OpenVINO) is imported at module level, directly
or through other modules, only by ``ml/`` itself, ``training/``, ``inference/loading.py`` and the
training entry points; everywhere else it is imported inside the function that needs it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

APP = REPO / "app"
ENTRY_POINTS = frozenset({"main", "serve", "train", "evaluate", "predict"})
CORE_PACKAGES = frozenset({"store", "observability"})
LAYERS = frozenset(
    {"ml", "training", "inference", "jobs", "dataset", "v2", "http", "cluster", "web", "scoring"}
)
ALLOWED = {
    "core": {"core"},
    "ml": {"core", "ml"},
    "dataset": {"core", "dataset"},
    "jobs": {"core", "jobs"},
    "training": {"core", "ml", "dataset", "training"},
    "inference": {"core", "ml", "inference"},
    "errors": {"core", "inference", "jobs", "dataset", "errors"},
    "v2": {"core", "errors", "inference", "v2"},
    "http": {"core", "errors", "inference", "jobs", "dataset", "v2", "http"},
    "scoring": {"core", "ml", "inference", "scoring"},
    "cluster": {"core", "errors", "inference", "jobs", "dataset", "v2", "http", "entry", "cluster"},
    "entry": {"core", "ml", "errors", "inference", "jobs", "dataset", "v2", "http", "training"}
    | {"scoring", "entry"},
}
# Who may import ml/ at module level (directly or through what it imports).
HEAVY_ALLOWED = ("app.ml", "app.training", "app.inference.loading", "app.train", "app.evaluate")


@dataclass(frozen=True)
class Import:
    line: int
    module: str
    at_load: bool  # runs when the importing module is loaded (not in a function, not for types)


def layer_of(module: str, app: Path = APP) -> str:
    """``app.jobs.runner`` -> jobs; ``app.store.versions`` -> core; ``app.main`` -> entry."""
    parts = module.split(".")
    if len(parts) == 1:
        return "core"  # `import app` itself
    if parts[1] in ENTRY_POINTS:
        return "entry"
    if parts[1] == "errors":
        return "errors"
    if parts[1] in CORE_PACKAGES:
        return "core"
    if (app / parts[1]).is_dir():
        if parts[1] not in LAYERS:
            raise AssertionError(f"app/{parts[1]}/ has no declared layer: add it to this test")
        return parts[1]
    return "core"


def module_name(path: Path, app: Path = APP) -> str:
    relative = path.relative_to(app.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports_of(path: Path, app: Path = APP) -> list[Import]:
    """Every import of an ``app`` module in the file, nested ones included."""
    found = list(_imports(ast.parse(path.read_text(encoding="utf-8")).body, app, at_load=True))
    return [i for i in found if i.module == "app" or i.module.startswith("app.")]


def _imports(body: list[ast.stmt], app: Path, at_load: bool) -> Iterator[Import]:
    for node in body:
        if isinstance(node, ast.Import):
            yield from (Import(node.lineno, alias.name, at_load) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from (Import(line, name, at_load) for line, name in _from_import(node, app))
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(node.body, app, at_load=False)
            yield from _imports(node.orelse, app, at_load)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _imports(node.body, app, at_load=False)
        else:  # classes, try blocks, ...: their own statements run as the module loads
            for field in ("body", "orelse", "finalbody"):
                nested = getattr(node, field, None)
                if isinstance(nested, list):
                    yield from _imports(nested, app, at_load)
            for handler in getattr(node, "handlers", []):
                yield from _imports(handler.body, app, at_load)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _from_import(node: ast.ImportFrom, app: Path) -> list[tuple[int, str]]:
    module = node.module or ""
    # `from app import training` imports the module app.training, not names of app
    if module == "app" or (app / Path(*module.split(".")[1:])).is_dir():
        return [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return [(node.lineno, module)]


def _modules(app: Path) -> dict[str, Path]:
    return {module_name(path, app): path for path in sorted(app.rglob("*.py"))}


def violations(app: Path = APP) -> list[str]:
    """Every import that crosses a layer the rules do not allow."""
    found = []
    for name, path in _modules(app).items():
        layer = layer_of(name, app)
        for imported in imports_of(path, app):
            target = layer_of(imported.module, app)
            if target not in ALLOWED[layer]:
                where = path.relative_to(app.parent)
                found.append(
                    f"{where}:{imported.line}: {layer} imports {imported.module} ({target})"
                )
    return found


def heavy_violations(app: Path = APP) -> list[str]:
    """Modules that load ml/ as they load, though the rules say they must not (the chain)."""
    modules = _modules(app)
    loads = {
        name: [i.module for i in imports_of(path, app) if i.at_load]
        for name, path in modules.items()
    }
    found = []
    for name in modules:
        if name.startswith(HEAVY_ALLOWED):
            continue
        chain = _chain_to_ml(name, loads)
        if chain:
            found.append(" -> ".join(chain))
    return found


def _chain_to_ml(start: str, loads: dict[str, list[str]]) -> list[str]:
    """The first chain of load-time imports from ``start`` to an ml/ module ([] if none)."""
    seen, stack = {start}, [[start]]
    while stack:
        chain = stack.pop()
        for imported in loads.get(chain[-1], []):
            if imported.startswith("app.ml"):
                return [*chain, imported]
            if imported in loads and imported not in seen:
                seen.add(imported)
                stack.append([*chain, imported])
    return []


def test_every_import_follows_the_layer_rules() -> None:
    assert violations() == []


def test_only_training_and_the_engine_loader_load_tensorflow_as_they_load() -> None:
    assert heavy_violations() == []


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("app.store.versions", "core"),
        ("app.observability.metrics", "core"),
        ("app.imaging", "core"),
        ("app.errors", "errors"),
        ("app.ml.engines", "ml"),
        ("app.training.pipeline", "training"),
        ("app.inference.predictor", "inference"),
        ("app.jobs.runner", "jobs"),
        ("app.dataset.labelling", "dataset"),
        ("app.http.admin", "http"),
        ("app.v2.dataplane", "v2"),
        ("app.cluster.model_deployment", "cluster"),
        ("app.train", "entry"),
    ],
)
def test_modules_are_placed_in_their_layer(module: str, layer: str) -> None:
    assert layer_of(module) == layer


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    app = tmp_path / "app"
    for name in ("inference", "http", "training", "ml", "v2"):
        (app / name).mkdir(parents=True)
    for relative, text in files.items():
        (app / relative).write_text(text)
    return app


def test_a_wrong_import_is_reported_with_its_line(tmp_path: Path) -> None:
    app = _tree(
        tmp_path,
        {
            "imaging.py": "import json\n",
            "inference/predictor.py": "def f() -> None:\n    from app.training import pipeline\n",
            "v2/dataplane.py": "from app.http import deps\n",
            "http/routes.py": "from app.inference import predictor\nfrom app import imaging\n",
            "store2.py": "from app.http.routes import x\n",
        },
    )
    assert violations(app) == [
        "app/inference/predictor.py:2: inference imports app.training.pipeline (training)",
        "app/store2.py:1: core imports app.http.routes (http)",
        "app/v2/dataplane.py:1: v2 imports app.http.deps (http)",
    ]


def test_loading_ml_through_another_module_is_reported_but_not_for_types(tmp_path: Path) -> None:
    app = _tree(
        tmp_path,
        {
            "ml/engines.py": "import json\n",
            "inference/backend.py": "from app.inference import manager\n",
            "inference/manager.py": "from app.ml.engines import Engine\n",
            "inference/typed.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from app.ml.engines import Engine\n"
            ),
            "inference/deferred.py": "def load() -> None:\n    from app.ml import engines\n",
            "inference/method.py": (
                "class Replica:\n"
                "    def __init__(self) -> None:\n"
                "        from app.ml import engines\n"
            ),
            "inference/loading.py": "from app.ml import engines\n",
        },
    )
    assert sorted(heavy_violations(app)) == [
        "app.inference.backend -> app.inference.manager -> app.ml.engines",
        "app.inference.manager -> app.ml.engines",
    ]


def test_the_app_factory_imports_no_tensorflow() -> None:
    """The cluster's Ingress replicas build the app and never load a model: no 500 MB import."""
    probe = "import sys, app.main; print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
