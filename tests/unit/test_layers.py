"""The layer picture of ARCHITECTURE.md, enforced: a module imports only from
its own layer or the layers below (imports under ``TYPE_CHECKING`` aside)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "servcore"

# Bottom to top; the first part of a module's name under servcore/.
LAYERS: list[set[str]] = [
    {
        "errors",
        "clock",
        "timestamps",
        "retry",
        "jobs",
        "job_reads",
        "telemetry",
        "loop_thread",
        "sampled",
    },
    {
        "tasks",
        "cron",
        "job_requests",
        "auth",
        "config",
        "pipelines",
        "supervisor",
        "notifier",
        "leadership",
    },
    {"store", "metrics", "cluster_sample", "tracing", "logs", "config_file"},
    {"runtime", "maintenance"},
    {"worker_node", "queue_router", "job_client", "service_telemetry"},
    {"service"},
    {"http", "process_main", "cli", "cli_types", "testing", "__init__"},
]


def _layer_of(part: str) -> int:
    for index, layer in enumerate(LAYERS):
        if part in layer:
            return index
    raise AssertionError(f"servcore.{part} is in no layer: add it to LAYERS and ARCHITECTURE.md")


def _first_part(path: Path) -> str:
    relative = path.relative_to(SRC).with_suffix("")
    return relative.parts[0]


def _imports(tree: ast.Module) -> list[str]:
    """servcore modules imported at run time (not under ``if TYPE_CHECKING:``)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("servcore"):
            found.append(node.module)
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if alias.name.startswith("servcore"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_every_import_goes_down_or_sideways() -> None:
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        own = _first_part(path)
        for module in _imports(ast.parse(path.read_text())):
            parts = module.split(".")
            if len(parts) < 2:
                continue  # the package itself
            if _layer_of(parts[1]) > _layer_of(own):
                wrong.append(f"{path.relative_to(SRC)} imports {module}")
    assert wrong == [], "imports that go up a layer:\n" + "\n".join(wrong)
