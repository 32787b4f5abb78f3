"""The one-file audit export verifier, for auditors with Python and ``cryptography`` only:
``flask --app wsgi audit verifier --out FILE`` and ``GET /audit/verifier.py`` build it.

The file is generated, never edited: it carries the exact source text of
``console.audit.offline`` and the three modules it imports (chain, export_format,
checkpoint_format), and a small import hook serves them under their own module names before
running ``offline.main``. The auditor runs the very code the console's tests cover, with the
same first-bad-row report and exit codes; nothing is copied by hand or kept in step.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

EMBEDDED = ("console.audit.chain", "console.audit.export_format",
            "console.audit.checkpoint_format", "console.audit.offline")
_PACKAGES = ("console", "console.audit")
FILENAME = "verify_audit_export.py"
DISTRIBUTION = "finci-console"
_VERSION_TEXT = re.compile(r"[0-9A-Za-z.+_-]{1,64}")


class StandaloneError(RuntimeError):
    """An embedded module imports something the one file cannot carry."""


@dataclass(frozen=True)
class Verifier:
    text: str
    sha256: str  # of the file's UTF-8 bytes
    modules: dict[str, str]  # module name -> sha256 of its embedded source
    version: str | None


def module_source(name: str) -> str:
    return (Path(__file__).resolve().parent / f"{name.rsplit('.', 1)[1]}.py").read_text(
        encoding="utf-8")


def foreign_imports(source: str) -> list[str]:
    """What ``source`` imports beyond the standard library, ``cryptography`` and the
    embedded modules (those would fail where the console is not installed)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            names = ([f"{module}.{alias.name}" for alias in node.names]
                     if module in _PACKAGES else [module])
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if not (name in EMBEDDED or top in {"__future__", "cryptography"}
                    or top in sys.stdlib_module_names):
                found.append(name)
    return found


def console_version() -> str | None:
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None
    return version if _VERSION_TEXT.fullmatch(version) else None


def _literal(source: str) -> str:
    """The source as a parenthesised run of one string literal per line: exact, and readable
    enough for an auditor to compare with the console's tree."""
    return "(\n" + "".join(f"        {line!r}\n" for line in source.splitlines(keepends=True)) \
        + "    )"


def build() -> Verifier:
    sources = {name: module_source(name) for name in EMBEDDED}
    for name, source in sources.items():
        if foreign := foreign_imports(source):
            raise StandaloneError(f"{name} imports {', '.join(foreign)}: the one-file verifier "
                                  "can carry only the standard library, cryptography and "
                                  f"{', '.join(EMBEDDED)}")
    hashes = {name: hashlib.sha256(source.encode()).hexdigest()
              for name, source in sources.items()}
    version = console_version()
    listing = "".join(f"    {name.replace('.', '/')}.py  {digest}\n"
                      for name, digest in hashes.items())
    text = (_HEADER.replace("@FILENAME@", FILENAME).replace("@MODULES@", listing)
            .replace("@VERSION@", f"{DISTRIBUTION} {version}" if version
                     else f"{DISTRIBUTION} (version unknown)")
            + "_SOURCES = {\n"
            + "".join(f"    {name!r}: {_literal(source)},\n" for name, source in sources.items())
            + "}\n_SHA256 = {\n"
            + "".join(f"    {name!r}: {digest!r},\n" for name, digest in hashes.items())
            + "}\n" + _RUNNER.replace("@FILENAME@", FILENAME))
    return Verifier(text=text, sha256=hashlib.sha256(text.encode()).hexdigest(),
                    modules=hashes, version=version)


_HEADER = '''#!/usr/bin/env python3
"""Verify a FINCI console audit export offline: one file, no console, database or settings.

Needs Python 3.11 or later and the `cryptography` package (pip install cryptography).

    python3 @FILENAME@ EXPORT.zip --public-key PUBLIC.pem [--json]

PUBLIC.pem is the console's export public key (audit page, "download the public key", or
`flask --app wsgi audit public-key`); compare its key id with the one the console shows.

Exit 0: the signature verifies with the key, events.jsonl is exactly the signed run of the
hash chain (every row hash recomputed, every link checked) and every checkpoint is signed by
the same key and matches its row. Exit 1: the first problem found, naming the first bad row
(a changed, missing, inserted or reordered row) or member (manifest, signature, checkpoints,
wrong key). Exit 2: the input cannot be read (not a zip, a member missing, bad JSON, an
unreadable key file), or this file was changed.

This is `python -m console.audit.offline` as one file: it embeds the exact source of the
console modules below (sha256 of each, as in the console's tree) and serves them to itself
under their own names, then runs the verifier. Built by @VERSION@.

@MODULES@"""

import hashlib
import importlib.abc
import importlib.util
import json
import linecache
import sys

_PACKAGES = ("console", "console.audit")
'''

_RUNNER = '''

class _Changed(ImportError):
    pass


class _EmbeddedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the embedded modules (and empty parent packages) ahead of anything installed,
    so this file runs exactly the code it carries."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in _PACKAGES or fullname in _SOURCES:
            return importlib.util.spec_from_loader(fullname, self,
                                                   is_package=fullname in _PACKAGES)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__spec__.name
        if name in _PACKAGES:
            return
        source = _SOURCES[name]
        if hashlib.sha256(source.encode()).hexdigest() != _SHA256[name]:
            raise _Changed(f"the embedded {name} was changed after this file was built")
        filename = f"<{name} embedded in @FILENAME@>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module.__file__ = filename
        exec(compile(source, filename, "exec"), module.__dict__)


def _refuse(message):
    if "--json" in sys.argv[1:]:
        print(json.dumps({"ok": False, "error": message}, sort_keys=True))
    else:
        print(f"error: {message}", file=sys.stderr)
    return 2


def main():
    if sys.version_info < (3, 11):
        return _refuse("this verifier needs Python 3.11 or later")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _refuse("this verifier needs the cryptography package (pip install "
                       "cryptography)")
    sys.meta_path.insert(0, _EmbeddedModules())
    try:
        from console.audit import offline
    except _Changed as error:
        return _refuse(str(error))
    return offline.main(prog="python3 @FILENAME@")


if __name__ == "__main__":
    sys.exit(main())
'''
