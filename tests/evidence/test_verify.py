"""``flask evidence verify``: an untouched pack passes; each kind of tampering is named."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import pytest

from console.evidence.pack import write_pack
from tests.evidence.test_pack import KEY, _cli_app, _result


@pytest.fixture()
def pack(tmp_path):
    out = tmp_path / "pack"
    write_pack(out, _result(), environment="sandbox", version="0.1.0",
               console_url="http://127.0.0.1:1", signing_key=KEY)
    return out


def _verify(*args):
    app = _cli_app("sandbox")
    settings = app.extensions["settings"]
    app.extensions["settings"] = dataclasses.replace(
        settings, audit=dataclasses.replace(settings.audit, export_signing_key=KEY))
    return app.test_cli_runner().invoke(args=["evidence", "verify", *map(str, args)])


def test_an_untouched_pack_passes_as_folder_and_zip(pack, tmp_path):
    assert _verify(pack).exit_code == 0
    archive = tmp_path / "pack.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in pack.iterdir():
            z.write(f, f.name)
    result = _verify(archive, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["ok"] is True


@pytest.mark.parametrize("edit, named", [
    (lambda p: (p / "report.html").write_text("<p>edited</p>"), "report.html was changed"),
    (lambda p: (p / "01-records-created.json").write_text("{}"),
     "01-records-created.json was changed"),
    (lambda p: (p / "manifest.json").write_bytes((p / "manifest.json").read_bytes() + b" "),
     "manifest.sig does not match manifest.json"),
    (lambda p: (p / "manifest.sig").write_text("AAAA"), "manifest.sig does not match"),
])
def test_tampering_fails_naming_the_file(pack, edit, named):
    edit(pack)
    result = _verify(pack)
    assert result.exit_code == 1 and named in result.output


def test_bad_input_is_a_clear_usage_error(tmp_path):
    assert "does not exist" in _verify(tmp_path / "nope").output
    (tmp_path / "x.txt").write_text("x")
    assert "neither a pack" in _verify(tmp_path / "x.txt").output
    assert "not an evidence pack" in _verify(tmp_path).output


def test_a_zip_with_folder_or_traversal_names_is_refused_before_extracting(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../manifest.json", "{}")
    result = _verify(archive)
    assert result.exit_code == 2 and "unexpected paths" in result.output
    assert not (tmp_path.parent / "manifest.json").exists()
