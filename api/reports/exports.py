"""Rows -> CSV or XLSX files (reports and call lists).

Formula injection: a text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage
return would be a formula to Excel/LibreOffice (a note `=HYPERLINK(...)`, a CRM name
`@SUM(...)`). Such cells are written as text: in CSV with a leading `'` (OWASP's advice;
spreadsheets show the rest as typed), in XLSX as a string cell with the "quote prefix"
style (never a formula element). Numbers are numbers and are left alone.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

CSV_TYPE = "text/csv; charset=utf-8"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def is_formula_like(value: Any) -> bool:
    """Whether a spreadsheet would read this cell as a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def csv_cell(value: Any) -> Any:
    """The value as a CSV cell: None empty, formula-like text quoted as text."""
    if value is None:
        return ""
    return "'" + value if is_formula_like(value) else value
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted columns (`state_ms.available`); lists become text."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = ", ".join(str(v) for v in value)
        else:
            out[name] = value
    return out


def table(rows: Iterable[Mapping[str, Any]],
          columns: Sequence[str] | None = None) -> tuple[list[str], list[list[Any]]]:
    flat = [flatten(r) for r in rows]
    if columns is None:
        seen: dict[str, None] = {}
        for r in flat:
            for k in r:
                seen.setdefault(k, None)
        columns = list(seen)
    return list(columns), [[r.get(c) for c in columns] for r in flat]


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> bytes:
    """UTF-8 CSV with a BOM, so Excel shows Vietnamese text correctly."""
    header, body = table(rows, columns)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for row in body:
        writer.writerow([csv_cell(v) for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None,
            sheet: str = "report") -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    header, body = table(rows, columns)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet[:31])

    def cell(value: Any) -> Any:
        if not is_formula_like(value):
            return value
        text = WriteOnlyCell(ws, value=value)
        text.data_type = "s"  # openpyxl would make any "=..." string a formula
        text.quotePrefix = True
        return text

    ws.append([cell(h) for h in header])
    for row in body:
        ws.append([cell(v) for v in row])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
