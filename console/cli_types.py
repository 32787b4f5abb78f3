"""Parameter types for the console's commands: what an operator types or pastes is refused as a
usage error (exit 2, one line saying why), never passed on to fail deeper as a traceback.

- ``RECORD_ID``: a database id, 1 to the largest BIGINT (a longer number is no record of ours,
  and SQLite and PostgreSQL both overflow on it);
- ``Path``, ``File`` and ``Text``: click's own, refusing a NUL byte (no path can hold one, nor
  PostgreSQL text); ``harden`` gives every plain text parameter of a command tree the check.
"""

from __future__ import annotations

import os
from typing import Any

import click

from console.request_params import BIGINT_MAX

RECORD_ID = click.IntRange(1, BIGINT_MAX)


def _refuse_nul(kind: click.ParamType, value: Any, param, ctx) -> None:
    if isinstance(value, str) and "\x00" in value:
        kind.fail("a path cannot contain a NUL character", param, ctx)


class Path(click.Path):
    """``output=True``: a file the command writes (by rename over it). An existing regular file
    is replaced, as the command's help says; anything else there (a device such as /dev/null,
    a fifo, a socket) is refused rather than replaced by a file."""

    def __init__(self, *args, output: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.output = output

    def convert(self, value, param, ctx):
        _refuse_nul(self, value, param, ctx)
        converted = super().convert(value, param, ctx)
        if self.output and os.path.lexists(value) and not (
                os.path.isfile(value) and not os.path.islink(value)):
            self.fail(f"{value} exists and is not a regular file; choose a file path", param,
                      ctx)
        return converted


class File(click.File):
    def convert(self, value, param, ctx):
        _refuse_nul(self, value, param, ctx)
        return super().convert(value, param, ctx)


class Text(click.types.StringParamType):
    """Click's plain text, refusing a NUL byte (PostgreSQL text cannot hold one)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "\x00" in value:
            self.fail("text cannot contain a NUL character", param, ctx)
        return super().convert(value, param, ctx)


TEXT = Text()


def harden(command: click.Command) -> None:
    """Give every plain text parameter of ``command`` and its subcommands the NUL check, so a
    command added later is covered without remembering to ask for it."""
    for param in command.params:
        if type(param.type) is click.types.StringParamType:
            param.type = TEXT
    for sub in getattr(command, "commands", {}).values():
        harden(sub)
