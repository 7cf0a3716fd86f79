"""The static per-tenant files are examples, not the demo (issue 14: the static acme numbers
were the demo's, and the api's answer silently won over them)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from routing import numbers

pytestmark = pytest.mark.fsconf
ROOT = Path(__file__).resolve().parents[3]


def test_no_static_number_is_one_of_the_demos():
    demo = yaml.safe_load((ROOT / "deploy" / "local" / "demo" / "demo.yaml").read_text())
    demo_numbers = {numbers.to_e164(str(n)) for n in demo["dids"]}
    forms = set()
    for n in demo_numbers:  # every form a carrier may send
        national = "0" + n[3:] if n.startswith("+84") else n
        forms |= {n, n.lstrip("+"), national}
    static = []
    for path in (ROOT / "fs-conf" / "dialplan" / "public").glob("*.xml"):
        static += re.findall(r'expression="([^"]+)"', path.read_text())
    assert len(static) >= 4
    clashes = sorted((expr, f) for expr in static for f in forms if re.fullmatch(expr, f))
    assert clashes == []
