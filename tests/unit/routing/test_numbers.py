"""Phone number normalization and area-code regions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from routing.numbers import (
    CENTRAL,
    NORTH,
    REGIONS,
    SOUTH,
    Region,
    is_mobile,
    national_number,
    region_of,
    to_e164,
)

pytestmark = pytest.mark.routing


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+84 24 3825 1234", "+842438251234"),
        ("842438251234", "+842438251234"),
        ("00842438251234", "+842438251234"),
        ("024.3825.1234", "+842438251234"),
        ("(028) 3829-1234", "+842838291234"),
        ("0912345678", "+84912345678"),
        ("+84912345678", "+84912345678"),
        ("84912345678", "+84912345678"),
        ("912345678", "+84912345678"),
        ("+84 0912 345 678", "+84912345678"),
        ("01681234567", "+84381234567"),  # pre-2018 Viettel 0168 → 038
        ("01201234567", "+84701234567"),  # pre-2018 MobiFone 0120 → 070
        ("1000", "1000"),
        ("42", "42"),
        ("18001234", "18001234"),
        ("1800123456", "1800123456"),
        ("19001234", "19001234"),
        ("+14155551234", "+14155551234"),
        ("0014155551234", "+14155551234"),
    ],
)
def test_to_e164_normalizes(raw: str, expected: str) -> None:
    assert to_e164(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "characters"),
        ("09x2345678", "characters"),
        ("0112345678", "no Vietnamese number starts with 01"),
        ("09123", "9 digits"),
        ("02412345", "10 digits"),
        ("+0123456789", "international"),
        ("+123", "international"),
        ("1234567", "expected"),
    ],
)
def test_to_e164_rejects_garbage_with_reason(raw: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        to_e164(raw)


def test_to_e164_other_country_national_form() -> None:
    assert to_e164("030 1234567", country="49") == "+49301234567"


def test_sixty_three_provinces_three_regions() -> None:
    assert len(REGIONS) == 63
    assert len({r.province for r in REGIONS.values()}) == 63
    by_region = {k: sum(1 for r in REGIONS.values() if r.region == k) for k in (NORTH, CENTRAL, SOUTH)}
    assert by_region == {NORTH: 25, CENTRAL: 19, SOUTH: 19}


@pytest.mark.parametrize(
    ("number", "province", "region"),
    [
        ("024 3825 1234", "Hà Nội", NORTH),
        ("+842838291234", "TP. Hồ Chí Minh", SOUTH),
        ("0236 3822 222", "Đà Nẵng", CENTRAL),
        ("842253123456", "Hải Phòng", NORTH),
        ("0292 3123 456", "Cần Thơ", SOUTH),
        ("0263 3123 456", "Lâm Đồng", CENTRAL),
        ("0234 3123 456", "Thừa Thiên Huế", CENTRAL),
    ],
)
def test_region_of_landlines(number: str, province: str, region: str) -> None:
    r = region_of(number)
    assert r is not None and (r.province, r.region) == (province, region)


@pytest.mark.parametrize("number", ["0912345678", "1000", "18001234", "+14155551234", "junk"])
def test_region_of_unknown_is_none(number: str) -> None:
    assert region_of(number) is None


def test_region_of_configured_mobile_prefix_wins() -> None:
    mine = Region("0912", "Hà Nội (configured)", NORTH)
    assert region_of("0912345678", extra={"0912": mine}) == mine
    assert region_of("0913345678", extra={"0912": mine}) is None


def test_is_mobile_and_national_number() -> None:
    assert is_mobile("+84912345678") and not is_mobile("02438251234") and not is_mobile("x")
    assert national_number("+842438251234") == "02438251234"


@settings(max_examples=100, deadline=None)
@given(
    code=st.sampled_from(sorted(REGIONS)),
    rest=st.integers(min_value=0, max_value=10**8 - 1),
    form=st.sampled_from(["0", "84", "+84", "0084"]),
)
def test_all_forms_agree(code: str, rest: int, form: str) -> None:
    width = 11 - len(code)
    subscriber = str(rest % 10**width).zfill(width)
    national = code + subscriber
    raw = national if form == "0" else form + national[1:]
    assert to_e164(raw) == "+84" + national[1:]
    assert to_e164(to_e164(raw)) == to_e164(raw)  # idempotent
    assert region_of(raw) == REGIONS[code]
