"""What a command found or did, as one object per command: it renders itself as
text or as JSON and owns its exit status (the model is black's Report). Commands
build one and `emit` it; nothing else decides an exit status (errors carry theirs,
exitcodes.ExitCode is the table)."""

from __future__ import annotations

import io
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from phphost.cli.output import plan_json, print_plan
from phphost.exitcodes import ExitCode
from phphost.plan import actions as A
from phphost.plan.capacity import Capacity


class Result(ABC):
    @abstractmethod
    def text(self) -> str:
        """What a person reads (ends with a newline unless empty)."""

    @abstractmethod
    def json(self) -> str:
        """What a program reads (ends with a newline)."""

    @property
    @abstractmethod
    def exit_code(self) -> ExitCode: ...

    def emit(self, as_json: bool, out: TextIO | None = None) -> ExitCode:
        (out or sys.stdout).write(self.json() if as_json else self.text())
        return self.exit_code


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1) + "\n"


@dataclass(frozen=True)
class PlanResult(Result):
    plan: A.Plan
    verbose: bool = False
    interrupted: bool = False     # an earlier apply left its journal
    capacity: Capacity | None = None

    def text(self) -> str:
        out = io.StringIO()
        if self.interrupted:
            out.write("note: an earlier apply was interrupted; apply rolls it back first.\n")
        print_plan(self.plan, out, verbose=self.verbose)
        if self.capacity is not None:
            out.write("\n" + "\n".join(self.capacity.lines(self.verbose)) + "\n")
        return out.getvalue()

    def json(self) -> str:
        if self.capacity is None:
            return plan_json(self.plan) + "\n"
        data = json.loads(plan_json(self.plan))
        data["capacity"] = self.capacity.to_json()
        return json.dumps(data, indent=1) + "\n"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.CHANGES if self.plan.has_changes() else ExitCode.OK


@dataclass(frozen=True)
class ApplyResult(Result):
    """apply and destroy: what changed, what an interrupted apply left and was undone."""

    plan: A.Plan
    done: Sequence[str]
    undone: Sequence[str]

    def text(self) -> str:
        lines = []
        if self.undone:
            lines.append(f"Rolled back {len(self.undone)} change(s) of an interrupted apply "
                         "first.")
        lines.append(f"{len(self.done)} change(s) made." if self.done
                     else "No changes: the host already matches.")
        return "\n".join(lines) + "\n"

    def json(self) -> str:
        return dumps({"changed": list(self.done), "recovered": list(self.undone),
                       "plan": json.loads(plan_json(self.plan))})

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK
