"""Every console command, every option and argument, hostile values: a clear refusal or a
result, never a traceback (issue 16's attack suite, for the CLI an operator types at 3 am).

Walks the command tree ``register_commands`` builds. Each value-taking parameter of each command
gets each hostile value in turn, the other required ones a plausible value, ``--json`` where the
command has it. The command must exit 0, 1 (refused, with a message) or 2 (usage error), and
raise nothing but SystemExit: an uncaught exception in the runner is what an operator would see
as a traceback.
"""

from __future__ import annotations

import os

import click

from console.cli import register_commands

# Values that broke a parser or the database elsewhere (tests/test_hostile_params.py), plus
# paths and signs an operator might paste. The walk runs in a temporary directory and every
# path here is relative and stays inside it: commands write files where they are told (one
# walk, given "../../../../etc/passwd" as root, replaced the machine's /etc/passwd). Writing
# over a device is covered by test_an_output_path_that_is_a_device_is_refused below.
HOSTILE = ["", "\x00", "a\x00b", "9" * 5000, "-1", "0", "99999999999999999999", "9999-12-31",
           "0001-01-01T00:00", "NaN", "1e999", "\u0663", "a\r\nb", "missing-dir/x",
           "sub/../x", "--json", "4111111111111111"]
# A plausible value for a required parameter the walk is not fuzzing at the moment.
PLAUSIBLE = {click.INT: "1", click.FLOAT: "1", click.STRING: "x"}

# Commands that serve, loop or reach the network until stopped, or replace the schema; each is
# covered by its own process tests (tests/test_gunicorn.py, tests/pipeline/test_processes.py,
# tests/scheduler/test_processes.py, tests/simulator/, tests/test_migrations.py).
SKIPPED = {"run", "shell", "routes", "worker", "scheduler run", "db upgrade", "db downgrade",
           "simulate", "demo", "evidence run"}


def _commands(group: click.Group, prefix: str = ""):
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if path in SKIPPED or any(path.startswith(s + " ") for s in SKIPPED):
            continue
        if isinstance(command, click.Group):
            yield from _commands(command, path + " ")
        else:
            yield path, command


def _plausible(param: click.Parameter) -> list[str]:
    if isinstance(param.type, click.Choice):
        value = str(param.type.choices[0])
    elif isinstance(param.type, click.DateTime):
        value = "2026-12-01"
    elif isinstance(param.type, click.IntRange | click.FloatRange):
        value = str(param.type.min if param.type.min is not None else 1)
    else:
        value = PLAUSIBLE.get(param.type, "x")
    if isinstance(param, click.Argument):
        return [value] * (param.nargs if param.nargs > 0 else 1)
    return [param.opts[0], value]


def _invocations(app):
    register_commands(app)
    for path, command in _commands(app.cli):
        fuzzed = [p for p in command.params
                  if not (isinstance(p, click.Option) and (p.is_flag or p.count))
                  and p.name not in ("help",)]
        for target in fuzzed:
            for value in HOSTILE:
                args = path.split()
                for param in command.params:
                    if param is target:
                        args += [value] if isinstance(param, click.Argument) else [
                            param.opts[0], value]
                    elif param.required:
                        args += _plausible(param)
                if any(o == "--json" for p in command.params for o in getattr(p, "opts", [])):
                    args.append("--json")
                yield path, target.name, value, args


def test_no_command_answers_a_hostile_value_with_a_traceback(app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    runner = app.test_cli_runner()
    invocations = list(_invocations(app))
    assert len({i[0] for i in invocations}) > 20  # the walk reaches the command tree
    failures = []
    for path, name, value, args in invocations:
        result = runner.invoke(args=args, input="")
        if result.exit_code not in (0, 1, 2) or (
                result.exception is not None and not isinstance(result.exception, SystemExit)):
            failures.append((path, name, value[:20], result.exit_code, repr(result.exception),
                             result.output[-300:]))
    assert failures == [], "\n".join(map(repr, failures))


def test_an_output_path_that_is_a_device_is_refused(cli, tmp_path):
    """A command that writes a file by renaming over its target must not replace a device (one
    did replace /dev/null); a regular file is replaced as the help says."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for command in (("audit", "verifier"), ("audit", "export")):
        result, _ = cli(*command, "--out", str(fifo))
        assert result.exit_code == 2, result.output
        assert "exists and is not a regular file" in result.output
        assert fifo.is_fifo()
