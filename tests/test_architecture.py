"""The layout's promises, read from the code's own imports: one package owns each backing
service's client library, and HTTP stays at the edge (README, "Code layout"). A new module
that reaches past an owner fails here, with its name."""

import ast
from pathlib import Path

import pytest

from tests.support.services import REPO

# Library -> where it may be imported (paths relative to the repository; a folder covers all
# below it). arq's worker belongs to the janitor's process; the API's composition root holds
# arq's pool type for its lifetime.
OWNERS: dict[str, tuple[str, ...]] = {
    "redis": ("service/store/",),
    "graphiti_core": ("service/graph/",),
    "neo4j": ("service/graph/",),
    "litestar": ("service/http/", "service/app.py"),
    "arq": ("service/store/jobs.py", "service/resources.py", "janitor/"),
}


def _modules() -> list[Path]:
    return [path for root in ("service", "janitor") for path in (REPO / root).rglob("*.py")]


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_only_its_owner_imports_a_backing_service_library(library: str) -> None:
    importers = [
        str(path.relative_to(REPO)) for path in _modules() if library in _imported_roots(path)
    ]
    trespassers = [
        name for name in importers if not any(name.startswith(own) for own in OWNERS[library])
    ]

    assert importers  # the owner itself still uses it: the check looks at real code
    assert trespassers == []


def test_the_domain_does_not_import_the_http_edge() -> None:
    below_the_edge = [
        path
        for path in (REPO / "service").rglob("*.py")
        if path.relative_to(REPO).parts[1] not in ("http", "app.py", "__main__.py")
    ]
    reaching_up = [
        str(path.relative_to(REPO))
        for path in below_the_edge
        if any(
            isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith(("service.http", "service.app"))
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    ]

    assert below_the_edge
    assert reaching_up == []
