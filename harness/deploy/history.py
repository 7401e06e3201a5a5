"""Freeze new versions of SQL objects into a revision, and seal history against edits.

``freeze`` compares every current definition file with the copy the history leaves deployed and
writes a new revision holding copies of the changed ones (and a dropped.txt for deleted ones).
``seal`` records a SHA-256 for every history file in db/migrations/HISTORY.sha256; ``verify_seal``
reports any sealed file that was edited or removed, and any file not sealed yet.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from alembic import command

from harness.deploy import versions as sqlversions
from harness.deploy.migrate import alembic_config, head_revision
from harness.deploy.paths import SqlLayout

SEAL_FILE = "HISTORY.sha256"
SCHEMA_TEMPLATE = "-- {which} DDL of revision {revision}: write it, then run `harness db seal`.\n"


class HistoryError(Exception):
    """History would be rewritten, or a revision cannot be made."""


def pending_changes(layout: SqlLayout, before: str = "~") -> tuple[list[Path], list[str]]:
    """Current files that differ from what history before ``before`` leaves deployed, and
    objects whose file is gone. ``~`` sorts after every revision id: the whole history."""
    changed = []
    current_names = set()
    for path in layout.definition_files():
        name = _object_name(path)
        current_names.add(name)
        copy = sqlversions.previous_copy(layout.history, before, name)
        if copy is None or copy.read_bytes() != path.read_bytes():
            changed.append(path)
    deployed_names = {
        _object_name(copy)
        for revision in sqlversions.revisions(layout.history)
        if revision < before
        for copy in sqlversions.frozen_objects(layout.history / revision)
    }
    dropped = sorted(
        name
        for name in deployed_names - current_names
        if sqlversions.previous_copy(layout.history, before, name) is not None
    )
    return changed, dropped


def freeze(layout: SqlLayout, message: str, *, with_schema: bool = False) -> str | None:
    """Write the next revision; None when nothing changed and no schema DDL was asked for.

    While the head revision is still open (not sealed), its copies are refreshed instead, so a
    change under review stays one revision.
    """
    open_head = _open_head(layout)
    changed, dropped = pending_changes(layout, before=open_head or "~")
    if open_head:
        _write_objects(layout.history / open_head, changed, dropped)
        return open_head
    if not (changed or dropped or with_schema):
        return None
    revision = _next_revision_id(layout)
    folder = layout.history / revision
    _write_objects(folder, changed, dropped)
    if with_schema:
        for file, which in (
            (sqlversions.SCHEMA_UP, "upgrade"),
            (sqlversions.SCHEMA_DOWN, "downgrade"),
        ):
            (folder / file).write_text(SCHEMA_TEMPLATE.format(which=which, revision=revision))
    command.revision(alembic_config(None, layout), message, rev_id=revision)
    if not with_schema:
        seal(layout)
    return revision


def _write_objects(folder: Path, changed: list[Path], dropped: list[str]) -> None:
    """Make ``folder`` hold exactly the copies of ``changed`` and the list of ``dropped``."""
    for stale in sqlversions.frozen_objects(folder):
        stale.unlink()
    for path in changed:
        target = folder / _object_name(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    folder.mkdir(parents=True, exist_ok=True)
    dropped_file = folder / sqlversions.DROPPED
    dropped_file.unlink(missing_ok=True)
    if dropped:
        dropped_file.write_text("\n".join(dropped) + "\n")


def _open_head(layout: SqlLayout) -> str | None:
    """The head revision when any of its files is not sealed yet."""
    head = head_revision(layout)
    if head is None:
        return None
    sealed = _read_seal(layout)
    prefixes = (f"sql/{head}/", f"versions/{head}_")
    own_files = [name for name in _history_files(layout) if name.startswith(prefixes)]
    return head if any(name not in sealed for name in own_files) else None


def seal(layout: SqlLayout) -> list[str]:
    """Seal every history file not sealed yet; refuse if a sealed one was edited."""
    problems = [p for p in verify_seal(layout) if not p.startswith("unsealed")]
    if problems:
        raise HistoryError(
            "history was edited; restore it from version control:\n" + "\n".join(problems)
        )
    sealed = _read_seal(layout)
    added = [name for name in _history_files(layout) if name not in sealed]
    for name in added:
        sealed[name] = _sha256(layout.migrations / name)
    lines = [f"{digest}  {name}" for name, digest in sorted(sealed.items())]
    (layout.migrations / SEAL_FILE).write_text("\n".join(lines) + "\n")
    return added


def verify_seal(layout: SqlLayout) -> list[str]:
    """Problems with the sealed history, one a line; empty when history is intact."""
    sealed = _read_seal(layout)
    present = _history_files(layout)
    problems = [f"removed: {name}" for name in sorted(set(sealed) - set(present))]
    for name in present:
        if name not in sealed:
            problems.append(f"unsealed: {name} (run `harness db seal` once the revision is final)")
        elif _sha256(layout.migrations / name) != sealed[name]:
            problems.append(f"edited: {name}")
    return problems


def _history_files(layout: SqlLayout) -> list[str]:
    files = [p for p in layout.history.rglob("*") if p.is_file()]
    files += list(layout.versions.glob("*.py"))
    return sorted(p.relative_to(layout.migrations).as_posix() for p in files)


def _read_seal(layout: SqlLayout) -> dict[str, str]:
    path = layout.migrations / SEAL_FILE
    if not path.is_file():
        return {}
    entries = (line.split("  ", 1) for line in path.read_text().splitlines() if line.strip())
    return {name: digest for digest, name in entries}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _object_name(path: Path) -> str:
    """``.../procedures/etl.x.sql`` -> ``procedures/etl.x.sql``."""
    return f"{path.parent.name}/{path.name}"


def _next_revision_id(layout: SqlLayout) -> str:
    head = head_revision(layout)
    if head is not None and not re.fullmatch(r"\d{4}", head):
        raise HistoryError(f"head revision {head!r} is not a four-digit id")
    return f"{int(head or 0) + 1:04d}"
