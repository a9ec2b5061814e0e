"""The layering and the key schema hold: checked on the source, not by convention."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import nexq
from nexq import errors
from nexq.keys import Keys

ROOT = Path(__file__).resolve().parents[1]
UPPER = ("runtime", "api", "cli", "app", "service", "worker", "scheduler", "webhooks", "doorbell",
         "events", "guard", "limits", "registry", "context")


def imported_modules(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (functions and
    TYPE_CHECKING blocks included), as absolute names."""
    package = package or ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out += [(node.lineno, f"{name}.{a.name}" if not node.module else name) for a in node.names]
    return out


def test_queue_and_store_import_nothing_from_the_layers_above() -> None:
    offenders = []
    for layer in ("queue", "store"):
        for path in sorted((ROOT / "nexq" / layer).glob("*.py")):
            for line, name in imported_modules(path):
                parts = name.split(".")
                if parts[0] == "nexq" and len(parts) > 1 and parts[1] in UPPER:
                    offenders.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert offenders == []


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    # The check above must not pass vacuously: an import from the runtime
    # inside a function, in a queue module, is found.
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..api import app\n"
                     "def f():\n    from ..runtime import worker\n")
    names = [n for _, n in imported_modules(probe, package="nexq.queue")]
    assert {"nexq.runtime", "nexq.api"} <= set(names)


def test_loading_settings_does_not_import_the_runtime() -> None:
    code = "import sys, nexq.config; print(sorted(m for m in sys.modules if m.startswith('nexq.runtime.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert "nexq.runtime.worker" not in out.stdout and "nexq.runtime.service" not in out.stdout


def every_key_family() -> set[str]:
    """The family of each key :class:`Keys` builds: the text between the
    namespace and the first argument."""
    keys, families = Keys("NS"), set()
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            key = getattr(keys, name)
        elif inspect.isfunction(member):
            n = len(inspect.signature(member).parameters) - 1
            key = member(keys, *[7] * n) if n else member(keys)
        else:
            continue
        assert key.startswith("NS:"), (name, key)
        families.add(key[3:].split("7")[0].rstrip(":"))
    return families


def test_every_key_family_is_documented_in_the_design() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    families = every_key_family()
    assert {"spec", "cur", "fin", "lease", "lane", "wheel", "limit", "kids"} <= families
    missing = sorted(f for f in families if f"{{ns}}:{f}" not in design)
    assert missing == []


def test_every_error_a_user_can_catch_is_exported() -> None:
    raised = {name for name, obj in vars(errors).items()
              if isinstance(obj, type) and issubclass(obj, BaseException)}
    assert raised <= set(nexq.__all__)
    # The engine's machinery is not in the user's namespace.
    assert not {"NodeBroker", "Inspector", "TaskSpec", "open_store", "Broker"} & set(nexq.__all__)
