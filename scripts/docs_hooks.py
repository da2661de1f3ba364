"""MkDocs hooks (mkdocs.yml ``hooks:``): pages and files made from the code at build time.

- ``reference/openapi.json``: the app's own OpenAPI document, as ``GET /openapi.json`` serves it
  with the default settings;
- ``reference/http-api.md``: every operation of that document, its parameters and statuses;
- ``images/bench-latest.png``: the benchmark's latest plot (``bench/results/latest.png``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parents[1]
METHODS = ("get", "post", "put", "patch", "delete")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    document = openapi_document()
    files.append(_generated(config, "reference/openapi.json", json.dumps(document, indent=2)))
    files.append(_generated(config, "reference/http-api.md", http_api_page(document)))
    plot = (REPO / "bench/results/latest.png").read_bytes()
    files.append(_generated(config, "images/bench-latest.png", plot))
    return files


def _generated(config: MkDocsConfig, uri: str, content: str | bytes) -> File:
    return File.generated(config, uri, content=content)


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document with the default settings, whatever this shell's FLOWERS_*."""
    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("FLOWERS_")}
    try:
        from app.config import Settings
        from app.main import create_app

        document: dict[str, Any] = create_app(Settings()).openapi()
        return document
    finally:
        os.environ.update(saved)


def http_api_page(document: dict[str, Any]) -> str:
    info = document["info"]
    lines = [
        "# HTTP API reference",
        "",
        f"Generated from the app's own OpenAPI document ({info['title']} {info['version']}) when "
        "this site was built; the document itself is [openapi.json](openapi.json), and a running "
        "server serves it at `/openapi.json` with interactive docs at `/docs`. Examples with "
        "real output are on the [REST API](../api.md) and [Open Inference "
        "Protocol](../open-inference-protocol.md) pages.",
        "",
    ]
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                lines += _operation(method.upper(), path, item[method])
    return "\n".join(lines) + "\n"


def _operation(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    lines = [f"## `{method} {path}`", "", operation.get("description") or "", ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | required | schema |", "|---|---|---|---|"]
        lines += [
            f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | "
            f"{_schema(p.get('schema', {}))} |"
            for p in parameters
        ]
        lines.append("")
    body = operation.get("requestBody", {}).get("content", {})
    if body:
        lines += [f"Body: {', '.join(f'`{kind}`' for kind in body)}", ""]
    lines += ["| status | meaning |", "|---|---|"]
    for status, response in operation.get("responses", {}).items():
        text = " ".join(response.get("description", "").split())
        lines.append(f"| {status} | {text} |")
    return [*lines, ""]


def _schema(schema: dict[str, Any]) -> str:
    kinds = [s.get("type", "") for s in schema.get("anyOf", [])] or [schema.get("type", "")]
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "pattern") if k in schema]
    return " or ".join(k for k in kinds if k) + (f" ({', '.join(bounds)})" if bounds else "")
