"""The one-file verifier (console.audit.standalone): it carries the exact source of the offline
verifier and its modules, runs where ``console`` cannot be imported, and gives the same verdicts
and exit codes as ``python -m console.audit.offline``."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import cryptography
import pytest

from console.audit import offline, standalone
from tests.audit.conftest import keyed_settings, rewrite
from tests.audit.test_offline import jsonl, rows_of

settings = pytest.fixture(keyed_settings, name="settings")
ROOT = Path(__file__).resolve().parents[2]
# The directory holding cryptography; with -S the editable install's .pth naming the console's
# tree is not processed, so this and the standard library are all the child can import.
SITE_PACKAGES = str(Path(cryptography.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def verifier_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("standalone") / standalone.FILENAME
    path.write_text(standalone.build().text, encoding="utf-8")
    return path


def run_bare(verifier: Path, *args, cwd: Path, site: str | None = SITE_PACKAGES,
             code: str | None = None) -> subprocess.CompletedProcess:
    """Run the file in an interpreter with only the standard library (and ``site``)."""
    path = f"sys.path.append({site!r}); " if site else ""
    program = code or (f"import sys; {path}import runpy; "
                       f"sys.argv = {[str(verifier), *map(str, args)]!r}; "
                       f"runpy.run_path({str(verifier)!r}, run_name='__main__')")
    if code:
        program = f"import sys; {path}{code}"
    env = {"PATH": os.environ.get("PATH", "")}
    return subprocess.run([sys.executable, "-S", "-c", program], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=120)


def test_console_is_not_importable_in_the_bare_interpreter(verifier_file, tmp_path):
    result = run_bare(verifier_file, cwd=tmp_path, code="import console")
    assert result.returncode == 1 and "No module named 'console'" in result.stderr
    result = run_bare(verifier_file, cwd=tmp_path, code="import cryptography; print('ok')")
    assert result.returncode == 0 and result.stdout == "ok\n"


def test_the_file_verifies_a_real_export_without_the_console(verifier_file, exported,
                                                             public_key_file, capsys):
    result = run_bare(verifier_file, exported, "--public-key", public_key_file,
                      cwd=exported.parent)
    assert result.returncode == 0, result.stderr
    assert offline.main([str(exported), "--public-key", str(public_key_file)]) == 0
    assert result.stdout == capsys.readouterr().out and result.stderr == ""


def test_a_tampered_export_gets_the_same_json_verdict_and_exit_code(
        verifier_file, exported, public_key_file, tmp_path, capsys):
    rows = rows_of(exported)
    rows[3]["actor_id"] = "mallory"
    path = rewrite(exported, tmp_path / "t.zip", events_jsonl=jsonl(rows))
    result = run_bare(verifier_file, path, "--public-key", public_key_file, "--json",
                      cwd=tmp_path)
    assert offline.main([str(path), "--public-key", str(public_key_file), "--json"]) == 1
    expected = json.loads(capsys.readouterr().out)
    assert result.returncode == 1 and json.loads(result.stdout) == expected
    assert expected["broken_seq"] == rows[3]["seq"]


def test_unreadable_input_is_exit_2_and_usage_names_the_file(verifier_file, tmp_path,
                                                             public_key_file):
    result = run_bare(verifier_file, tmp_path / "absent.zip", "--public-key",
                      public_key_file, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: cannot read")
    usage = run_bare(verifier_file, "--help", cwd=tmp_path)
    assert usage.returncode == 0
    assert usage.stdout.startswith(f"usage: python3 {standalone.FILENAME} [-h]")


def test_without_cryptography_it_says_what_to_install(verifier_file, tmp_path):
    result = run_bare(verifier_file, "x.zip", "--public-key", "k.pem", cwd=tmp_path, site=None)
    assert result.returncode == 2
    assert result.stderr == ("error: this verifier needs the cryptography package (pip install "
                             "cryptography)\n")
    as_json = run_bare(verifier_file, "x.zip", "--json", cwd=tmp_path, site=None)
    assert json.loads(as_json.stdout)["ok"] is False and as_json.returncode == 2


def test_an_edited_embedded_module_is_refused(verifier_file, tmp_path):
    text = verifier_file.read_text()
    edited = tmp_path / "edited.py"
    marker = "        'def verify_rows("
    assert marker in text
    edited.write_text(text.replace(marker, "        '\\n'\n" + marker, 1))
    result = run_bare(edited, "x.zip", "--public-key", "k.pem", cwd=tmp_path)
    assert result.returncode == 2
    assert "the embedded console.audit.chain was changed after this file was built" in (
        result.stderr)


def test_the_embedded_modules_win_over_an_installed_console(verifier_file, tmp_path):
    # Run with the console importable: the file still runs the code it carries.
    program = (f"import runpy, sys\nns = runpy.run_path({str(verifier_file)!r}, run_name='x')\n"
               "sys.meta_path.insert(0, ns['_EmbeddedModules']())\n"
               "from console.audit import offline\nprint(offline.__file__)\n")
    result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True,
                            text=True, check=False, timeout=60,
                            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"<console.audit.offline embedded in {standalone.FILENAME}>\n"


def _assigned(text: str, name: str):
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == name:
            return ast.literal_eval(node.value)
    raise AssertionError(name)


def test_the_file_embeds_the_exact_source_and_its_docstring_lists_each_hash_and_version():
    built = standalone.build()
    sources = _assigned(built.text, "_SOURCES")
    assert list(sources) == list(standalone.EMBEDDED)
    docstring = ast.get_docstring(ast.parse(built.text))
    for name, source in sources.items():
        path = ROOT / (name.replace(".", "/") + ".py")
        assert source == path.read_text(encoding="utf-8")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert built.modules[name] == digest == _assigned(built.text, "_SHA256")[name]
        assert f"{name.replace('.', '/')}.py  {digest}" in docstring
    assert f"Built by finci-console {importlib.metadata.version('finci-console')}." in docstring
    assert "Exit 0" in docstring and "Exit 1" in docstring and "Exit 2" in docstring
    assert built.text.startswith("#!/usr/bin/env python3\n")
    assert built.sha256 == hashlib.sha256(built.text.encode()).hexdigest()
    assert standalone.build().text == built.text  # the same tree builds the same file


@pytest.mark.parametrize("version", [None, "0.1.0\nimport os"])
def test_an_unknown_or_odd_version_is_left_out(monkeypatch, version):
    def fake(_name):
        if version is None:
            raise importlib.metadata.PackageNotFoundError(_name)
        return version

    monkeypatch.setattr(importlib.metadata, "version", fake)
    built = standalone.build()
    assert built.version is None and "Built by finci-console (version unknown)." in built.text


@pytest.mark.parametrize("statement", [
    "from console.db import utcnow", "import console.db", "from console import db",
    "import flask", "from . import chain"])
def test_a_module_importing_beyond_the_one_file_is_refused(monkeypatch, statement):
    real = standalone.module_source
    monkeypatch.setattr(standalone, "module_source",
                        lambda name: real(name) + ("\n" + statement + "\n"
                                                   if name.endswith("chain") else ""))
    with pytest.raises(standalone.StandaloneError, match=r"console\.audit\.chain imports"):
        standalone.build()


def test_the_embedded_modules_import_only_what_the_file_carries():
    for name in standalone.EMBEDDED:
        assert standalone.foreign_imports(standalone.module_source(name)) == []
    assert standalone.foreign_imports(
        "import json, cryptography.x509\nfrom console.audit import chain, offline\n") == []


# --- flask --app wsgi audit verifier ---------------------------------------------------------

def test_the_cli_writes_the_verifier_and_reports_its_hashes(cli, tmp_path):
    out = tmp_path / "v.py"
    result, document = cli("audit", "verifier", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    built = standalone.build()
    assert out.read_text(encoding="utf-8") == built.text
    assert document == {"file": str(out), "sha256": built.sha256, "modules": built.modules,
                        "version": built.version}
    human, _ = cli("audit", "verifier", "--out", str(out))
    assert f"run: python3 {out} EXPORT.zip --public-key PUBLIC.pem" in human.output
    assert [p.name for p in tmp_path.iterdir()] == ["v.py"]


def test_the_cli_refuses_a_directory_it_cannot_write(cli, tmp_path):
    result, _ = cli("audit", "verifier", "--out", str(tmp_path / "absent" / "v.py"))
    assert result.exit_code == 2 and "cannot write" in result.output


def test_a_failed_write_leaves_no_file(cli, tmp_path, monkeypatch):
    def fail(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    result, _ = cli("audit", "verifier", "--out", str(tmp_path / "v.py"))
    assert result.exit_code == 2 and "No space left on device" in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_cli_refuses_when_a_module_cannot_be_carried(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(standalone, "module_source", lambda name: "import flask\n")
    result, _ = cli("audit", "verifier", "--out", str(tmp_path / "v.py"))
    assert result.exit_code == 2 and "imports flask" in result.output
    assert list(tmp_path.iterdir()) == []
