"""The committed gRPC code is what its documented command generates, and stays out of processes
that do not serve gRPC."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

GENERATED = Path("app/v2/generated")
PROTO = GENERATED / "grpc_predict_v2.proto"


def _documented_command() -> list[str]:
    """The protoc arguments of the README's command block (after ``python``)."""
    readme = (REPO / GENERATED / "README.md").read_text()
    block = readme.split("```")[1].replace("\\\n", " ")
    return shlex.split(block.split("/python ", 1)[1])


def test_the_committed_code_is_what_the_documented_command_generates(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    (tmp_path / GENERATED).mkdir(parents=True)
    shutil.copy(REPO / PROTO, tmp_path / PROTO)
    plugins = str(Path(sys.executable).parent)  # protoc-gen-mypy{,_grpc} live beside python
    subprocess.run(
        [sys.executable, *_documented_command()],
        cwd=tmp_path,
        check=True,
        env={"PATH": f"{plugins}:/usr/bin:/bin"},
    )
    made = sorted(p.name for p in (tmp_path / GENERATED).iterdir() if p.name != PROTO.name)
    committed = [p.name for p in (REPO / GENERATED).iterdir() if p.suffix in (".py", ".pyi")]
    assert made == sorted(name for name in committed if name != "__init__.py")
    for name in made:
        assert (tmp_path / GENERATED / name).read_bytes() == (REPO / GENERATED / name).read_bytes()


def test_the_app_imports_the_generated_messages_only_to_serve_grpc() -> None:
    # protobuf's default pool holds one definition per message name: another copy of the
    # protocol in the same process (tritonclient.grpc's) would clash with ours.
    code = (
        "import sys, app.main, app.http.v2, app.v2.dataplane; "
        "print(sorted(m for m in sys.modules if m.startswith('app.v2.generated.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
