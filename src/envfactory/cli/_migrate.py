"""The migration of a workspace an older version laid out differently, for the commands that open a whole
workspace (`envfactory view`).

Contract: `migrate_workspace(workspace) -> list[str]` moves every folder of an older layout into the run
layout (DESIGN §11, `runs/<id>/<stage>/`) through the migrations the stages own, and returns one line per
move (nothing to do: an empty list):
- `graph/` (an older `graph build`) → `runs/graph-build/graph/` (`graph.stage.migrate_legacy_graph`);
- `builds/<name>/` (an older `library build`) → `runs/library-<name>/library/build/`
  (`build.stage.migrate_legacy_build`);
- `builds/reproduce/` without a `config.json` (an older `library reproduce`'s scratch) →
  `runs/reproduce-library/library/build/` (`build.stage.migrate_legacy_reproduce`).
Each move is one rename. A folder whose new place already holds something is refused with a
`BuildError`/`SpecError` naming both places (the moves before it stay done; nothing is half moved).
`library build` and the `graph` verbs call the stage's own migration for what they use.
"""

from __future__ import annotations

from envfactory.build.stage import (
    LEGACY_BUILDS,
    legacy_scratch,
    migrate_legacy_build,
    migrate_legacy_reproduce,
)
from envfactory.graph.stage import migrate_legacy_graph
from envfactory.store import Workspace


def migrate_workspace(workspace: Workspace) -> list[str]:
    """Move an older layout's folders under `runs/` (see the module contract); one line per move."""
    moved: list[str] = []
    graph = migrate_legacy_graph(workspace)
    if graph is not None:
        moved.append(f"{workspace.root / 'graph'}/ -> {graph}")
    scratch = legacy_scratch(workspace)
    reproduced = migrate_legacy_reproduce(workspace)
    if reproduced is not None:
        moved.append(f"{scratch}/ -> {reproduced}")
    builds = workspace.root / LEGACY_BUILDS
    if builds.is_dir():
        for legacy in sorted(p for p in builds.iterdir() if p.is_dir()):
            target = migrate_legacy_build(workspace, legacy.name)
            if target is not None:
                moved.append(f"{legacy}/ -> {target}")
    return moved
