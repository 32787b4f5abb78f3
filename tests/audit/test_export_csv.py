"""CSV exports: events.csv beside the chain-carrying events.jsonl, signed in the manifest, with
spreadsheet formulas defused; both verifiers compare it cell by cell with the verified JSON rows
and name the first differing row."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from console.audit import Actor, AuditAction, Target, offline, record
from console.audit import export_format as fmt
from console.audit.export import ExportRefused, ExportWindow, export_log
from tests.audit.conftest import keyed_settings, members, rewrite, write_export
from tests.audit.test_offline import manifest_of, resigned, run
from tests.audit.test_standalone import run_bare
from tests.audit.test_standalone import verifier_file as verifier_file  # a fixture

settings = pytest.fixture(keyed_settings, name="settings")
HOSTILE = ("=HYPERLINK(\"http://evil\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx")


@pytest.fixture
def csv_export(db_session, signing_key, tmp_path):
    """Hostile cell starts in actor ids and targets, a null target, unicode and a newline."""
    for n, start in enumerate(HOSTILE):
        record(db_session, actor=Actor.cli(start), action=AuditAction.AUDIT_LOG_VIEW,
               target=Target("card", f"'{start}") if n % 2 else None,
               details={"n": n, "note": "ünï\ncode"})
    result = export_log(db_session, actor=Actor.cli("exporter"), signing_key=signing_key,
                        window=ExportWindow(), max_rows=1000, events_format="csv")
    return write_export(result, tmp_path / "export-csv.zip")


def _table(path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(members(path)["events.csv"].decode(), newline="")))


def _csv(rows: list[list[str]]) -> bytes:
    return b"".join(fmt.csv_bytes(row) for row in rows)


def _verdict(capsys, path, public_key_file) -> tuple[int, dict]:
    code, out, _ = run(capsys, path, "--public-key", public_key_file, "--json")
    return code, json.loads(out)


def test_a_csv_export_has_both_event_files_signed_and_defuses_formulas(csv_export):
    contents = members(csv_export)
    assert list(contents) == ["events.jsonl", "events.csv", "checkpoints.jsonl",
                              "manifest.json", "manifest.sig"]
    manifest = json.loads(contents["manifest.json"])
    assert manifest["events_format"] == "csv"
    assert manifest["events_csv_sha256"] == fmt.hashlib.sha256(contents["events.csv"]).hexdigest()
    table = _table(csv_export)
    assert table[0] == list(fmt.CSV_COLUMNS) and len(table) == len(HOSTILE) + 1
    rows = [json.loads(line) for line in contents["events.jsonl"].splitlines()]
    for cells, row in zip(table[1:], rows, strict=True):
        as_dict = dict(zip(fmt.CSV_COLUMNS, cells, strict=True))
        assert as_dict["actor_id"] == "'" + row["actor_id"]  # every one starts a formula
        assert as_dict["details"] == row["details"] and json.loads(as_dict["details"])["n"] >= 0
        assert as_dict["target_id"] == (row["target_id"] or "")  # null is an empty cell
        assert as_dict["seq"] == str(row["seq"]) and as_dict["hash"] == row["hash"]
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r"))
                   for cells in table for cell in cells)


def test_an_untouched_csv_export_verifies(csv_export, public_key_file, capsys):
    code, verdict = _verdict(capsys, csv_export, public_key_file)
    assert code == 0 and verdict["ok"] and verdict["count"] == len(HOSTILE)


def test_an_unknown_format_is_refused(db_session, signing_key):
    record(db_session, actor=Actor.cli("x"), action=AuditAction.AUDIT_LOG_VIEW)
    with pytest.raises(ExportRefused, match="unknown export format 'xls': choose jsonl or csv"):
        export_log(db_session, actor=Actor.cli("x"), signing_key=signing_key,
                   window=ExportWindow(), max_rows=10, events_format="xls")


@pytest.mark.parametrize(("column", "value"), [("actor_id", "mallory"), ("details", "{}"),
                                               ("target_id", "'x"), ("hash", "0" * 64)])
def test_an_edited_cell_is_named_with_its_row(csv_export, public_key_file, tmp_path, capsys,
                                               column, value):
    table = _table(csv_export)
    table[3][fmt.CSV_COLUMNS.index(column)] = value
    path = rewrite(csv_export, tmp_path / "t.zip", events_csv=_csv(table))
    code, verdict = _verdict(capsys, path, public_key_file)
    seq = int(table[3][0])
    assert code == 1 and verdict["broken_seq"] == seq
    assert verdict["problem"].startswith(f"events.csv row 3 (seq {seq}): {column} is {value!r}")


def test_a_removed_csv_row_is_named(csv_export, public_key_file, tmp_path, capsys):
    table = _table(csv_export)
    del table[-1]
    path = rewrite(csv_export, tmp_path / "t.zip", events_csv=_csv(table))
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and verdict["problem"] == (
        f"events.csv row {len(HOSTILE)} (seq {verdict['broken_seq']}) is missing "
        "(events.jsonl has it)")


def test_an_added_csv_row_is_named(csv_export, public_key_file, tmp_path, capsys):
    table = _table(csv_export)
    path = rewrite(csv_export, tmp_path / "t.zip", events_csv=_csv([*table, table[-1]]))
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and verdict["problem"] == (
        f"events.csv: row {len(HOSTILE) + 1} was added after the last exported event")


def test_a_row_with_a_cell_dropped_is_named(csv_export, public_key_file, tmp_path, capsys):
    table = _table(csv_export)
    table[1].pop()
    table[2].pop()  # only the first difference is reported
    path = rewrite(csv_export, tmp_path / "t.zip", events_csv=_csv(table))
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and verdict["problem"].startswith("events.csv row 1 (seq ")
    assert "has 12 cells, not 13" in verdict["problem"]


def test_a_requoted_but_equal_csv_is_caught_by_the_file_hash(csv_export, public_key_file,
                                                              tmp_path, capsys):
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL).writerows(_table(csv_export))
    path = rewrite(csv_export, tmp_path / "t.zip", events_csv=out.getvalue().encode())
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and verdict["problem"] == (
        "events.csv: the file differs from the SHA-256 in the manifest (edited after export)")


def test_a_jsonl_problem_is_reported_before_the_csv_comparison(csv_export, public_key_file,
                                                                tmp_path, capsys):
    lines = members(csv_export)["events.jsonl"].splitlines(keepends=True)
    path = rewrite(csv_export, tmp_path / "t.zip", events_jsonl=b"".join(lines[:-1]))
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and verdict["problem"].startswith("events.jsonl: rows after")


@pytest.mark.parametrize(("data", "message"), [
    (b"seq,when\r\n", "events.csv: the header row is not seq,occurred_at"),
    (b"", "events.csv: the header row is not"),
    (fmt.CSV_HEADER + b"\xff\xfe\r\n", "cannot read events.csv from the export"),
    (b"\xff\xfe\r\n", "cannot read events.csv from the export"),
])
def test_an_unreadable_csv(csv_export, public_key_file, tmp_path, capsys, data, message):
    path = rewrite(csv_export, tmp_path / "t.zip", events_csv=data)
    code, _out, err = run(capsys, path, "--public-key", public_key_file)
    assert code == 2 and message in err


def test_an_overlong_csv_line(csv_export, public_key_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(offline, "MAX_LINE_BYTES", 1000)  # the JSON lines are shorter
    path = rewrite(csv_export, tmp_path / "t.zip",
                   events_csv=fmt.CSV_HEADER + b"x" * 2000 + b"\r\n")
    code, _out, err = run(capsys, path, "--public-key", public_key_file)
    assert code == 2 and "events.csv has a line longer than 1,000 characters" in err


def test_a_missing_csv_member(csv_export, public_key_file, tmp_path, capsys):
    path = rewrite(csv_export, tmp_path / "t.zip", events_csv=None)
    code, _out, err = run(capsys, path, "--public-key", public_key_file)
    assert code == 2 and "the export has no events.csv" in err


def test_a_csv_member_in_a_jsonl_export_is_unsigned(exported, csv_export, public_key_file,
                                                    tmp_path, capsys):
    path = rewrite(exported, tmp_path / "t.zip", events_csv=members(csv_export)["events.csv"])
    code, verdict = _verdict(capsys, path, public_key_file)
    assert code == 1 and "not cover: events.csv" in verdict["problem"]


def test_a_corrupted_csv_member(csv_export, public_key_file, tmp_path, capsys):
    path = rewrite(csv_export, tmp_path / "stored.zip", compression=zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    content = members(path)["events.csv"]
    data[data.index(content) + len(content) - 3] ^= 0x01
    path.write_bytes(bytes(data))
    code, _out, err = run(capsys, path, "--public-key", public_key_file)
    assert code == 2 and "cannot read events.csv from the export" in err


def test_an_unopenable_csv_member(csv_export, public_key_file, tmp_path, capsys, monkeypatch):
    real_open = zipfile.ZipFile.open

    def refuse(self, name, *args, **kwargs):
        if name == "events.csv":
            raise NotImplementedError("That compression method is not supported")
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)
    code, _out, err = run(capsys, csv_export, "--public-key", public_key_file)
    assert code == 2 and "cannot read events.csv from the export (That compression" in err


@pytest.mark.parametrize(("changes", "message"), [
    ({"events_format": "xlsx"}, "events_format is not jsonl or csv"),
    ({"events_csv_sha256": "nope"}, "events_csv_sha256 is not a SHA-256"),
])
def test_a_signed_manifest_with_a_bad_csv_entry(csv_export, public_key_file, signing_key,
                                                tmp_path, capsys, changes, message):
    path = resigned(csv_export, tmp_path / "t.zip", signing_key, **changes)
    code, _out, err = run(capsys, path, "--public-key", public_key_file)
    assert code == 2 and message in err


def test_an_export_from_before_formats_verifies_as_jsonl(exported, public_key_file,
                                                         signing_key, tmp_path, capsys):
    manifest = manifest_of(exported)
    del manifest["events_format"]
    data = fmt.manifest_bytes(manifest)
    path = rewrite(exported, tmp_path / "old.zip", manifest_json=data,
                   manifest_sig=fmt.sign(signing_key, data))
    assert _verdict(capsys, path, public_key_file)[0] == 0


def test_the_export_form_offers_csv_and_posts_it(as_compliance, db_session, tmp_path,
                                                 public_key_file, capsys):
    body = as_compliance.get("/audit/").get_data(as_text=True)
    assert '<select name="format">' in body and '<option value="csv">' in body
    # The streamed download with progress: a static script (the CSP allows no inline one).
    assert "data-export-stream" in body and "/static/js/audit-export.js" in body
    assert "data-export-progress" in body
    record(db_session, actor=Actor.cli("=cmd"), action=AuditAction.AUDIT_LOG_VIEW)
    db_session.flush()
    response = as_compliance.post("/audit/export", buffered=True, data={
        "csrf_token": as_compliance.csrf_token, "since": "", "until": "", "format": "csv"})
    assert response.status_code == 200
    path = tmp_path / "download.zip"
    path.write_bytes(response.get_data())
    assert "'=cmd" in members(path)["events.csv"].decode()
    assert _verdict(capsys, path, public_key_file)[0] == 0


def test_an_unknown_format_from_the_form_is_a_400(as_compliance, db_session):
    record(db_session, actor=Actor.cli("x"), action=AuditAction.AUDIT_LOG_VIEW)
    db_session.flush()
    response = as_compliance.post("/audit/export", buffered=True, data={
        "csrf_token": as_compliance.csrf_token, "format": "xls"})
    assert response.status_code == 400
    assert "unknown export format" in response.get_data(as_text=True)


def test_the_cli_exports_csv(cli, db_session, tmp_path, public_key_file, capsys):
    record(db_session, actor=Actor.cli("x"), action=AuditAction.AUDIT_LOG_VIEW)
    db_session.flush()
    out = tmp_path / "csv.zip"
    result, document = cli("audit", "export", "--format", "csv", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert document["events_format"] == "csv" and "events.csv" in members(out)
    assert _verdict(capsys, out, public_key_file)[0] == 0
    result, _ = cli("audit", "export", "--format", "xls", "--out", str(out))
    assert result.exit_code == 2 and "'xls' is not one of 'jsonl', 'csv'" in result.output


def test_the_one_file_verifier_checks_csv_and_names_the_edited_row(
        verifier_file, csv_export, public_key_file, tmp_path):
    result = run_bare(verifier_file, csv_export, "--public-key", public_key_file, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = _table(csv_export)
    table[2][fmt.CSV_COLUMNS.index("actor_id")] = "mallory"
    path = rewrite(csv_export, tmp_path / "t.zip", events_csv=_csv(table))
    result = run_bare(verifier_file, path, "--public-key", public_key_file, cwd=tmp_path)
    assert result.returncode == 1
    assert f"export INVALID: events.csv row 2 (seq {table[2][0]}): actor_id is 'mallory'" \
        in result.stdout
