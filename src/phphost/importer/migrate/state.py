"""Where a migration stands, in one root-only JSON file: the spec and the old Apache
it belongs to, the current stage, the sites moved to FPM, and the module links
migrate made (removed again on the way back; links the admin had are never touched)
and, at stage 4, the admin's links it took out (mod_php's, the old MPM's) with their
targets, so going back puts exactly those back; at stage 5, the per-pool masters it
made (their supervisord programs and files), so going back removes exactly those; at
stage 6, the admin's sites-enabled links it took out (with their targets) and the
owner, group and mode of every path in the tenant homes it changed, as they were.
Written atomically (files.atomic_write: temp file, fsync, rename, in a root-only
directory)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from phphost import files, layout
from phphost.errors import PlanError

STATE_FILE = f"{layout.STATE_DIR}/migrate.json"


@dataclass(frozen=True)
class MigrateState:
    spec: str                         # the spec's real path
    apache_root: str                  # the old Apache's ServerRoot (-d)
    stage: int = 0
    moved: tuple[str, ...] = ()       # sites whose .php go to the web user's FPM (stage 3)
    links: tuple[str, ...] = ()       # mods-enabled links migrate made (stage 3)
    off_made: tuple[tuple[str, str], ...] = ()      # stage 4: (link, target) migrate made
    off_removed: tuple[tuple[str, str], ...] = ()   # stage 4: (link, target) it took out
    split_programs: tuple[str, ...] = ()   # stage 5: the per-pool masters' programs
    split_files: tuple[str, ...] = ()      # stage 5: the files written for them
    sites_off: tuple[tuple[str, str], ...] = ()   # stage 6: (link, target) taken out
    # stage 6: (path, uid, gid, mode, dev, ino) of each path it changed
    owners: tuple[tuple[str, int, int, int, int, int], ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def parse(text: str, path: str) -> MigrateState:
    try:
        data = json.loads(text)
        state = MigrateState(str(data["spec"]), str(data["apache_root"]), int(data["stage"]),
                             tuple(str(s) for s in data["moved"]),
                             tuple(str(s) for s in data["links"]),
                             tuple(_pair(p) for p in data.get("off_made", [])),
                             tuple(_pair(p) for p in data.get("off_removed", [])),
                             _names(data.get("split_programs", [])),
                             _names(data.get("split_files", [])),
                             tuple(_pair(p) for p in data.get("sites_off", [])),
                             tuple(_owner(o) for o in data.get("owners", [])))
    except (ValueError, KeyError, TypeError) as err:
        raise PlanError(f"{path}: not a migrate state file ({err}). It is phphost's own "
                        "record; restore it from a backup, or remove it only if the old "
                        "Apache has no conf-enabled/phphost-migrate.conf") from err
    if state.stage < 0:
        raise PlanError(f"{path}: stage {state.stage} is not a stage")
    return state


def _pair(item: object) -> tuple[str, str]:
    if not isinstance(item, list) or len(item) != 2 or not all(isinstance(x, str) for x in item):
        raise ValueError(f"{item!r} is not a [link, target] pair")
    return item[0], item[1]


def _owner(item: object) -> tuple[str, int, int, int, int, int]:
    if not isinstance(item, list) or len(item) != 6 or not isinstance(item[0], str) or \
            not all(isinstance(x, int) and x >= 0 for x in item[1:]):
        raise ValueError(f"{item!r} is not a [path, uid, gid, mode, dev, ino] record")
    return item[0], item[1], item[2], item[3], item[4], item[5]


def _names(items: object) -> tuple[str, ...]:
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ValueError(f"{items!r} is not a list of names")
    return tuple(items)


def read(path: str = STATE_FILE) -> MigrateState | None:
    text = files.read_text(path)
    return None if text is None else parse(text, path)


def write(state: MigrateState, path: str = STATE_FILE) -> None:
    files.atomic_write(path, state.to_json(), mode=0o600)


def for_spec(found: MigrateState | None, spec: str, apache_root: str,
             path: str = STATE_FILE) -> MigrateState:
    """The state to go on from: the recorded one when it belongs to this spec and
    Apache; a fresh one when nothing is recorded or the record is at stage 0;
    PlanError when another migration is under way."""
    spec, apache_root = os.path.realpath(spec), os.path.realpath(apache_root)
    if found is None or found.stage == 0:
        return MigrateState(spec, apache_root)
    if (found.spec, found.apache_root) != (spec, apache_root):
        raise PlanError(
            f"{path}: a migration of {found.spec} (Apache {found.apache_root}) stands at "
            f"stage {found.stage}; this is {spec} (Apache {apache_root}). Finish that one or "
            f"take it back first: phphost migrate {found.spec} --apache-root "
            f"{found.apache_root} --to 0. Nothing was changed")
    return found
