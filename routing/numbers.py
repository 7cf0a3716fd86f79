"""Telephone numbers: normalization to E.164 and Vietnamese area-code regions.

Pure functions, standard library only. Used by routing (geo preference) and by the edges
(esl_bridge, api) to store one canonical form of a caller's number.

Forms accepted by :func:`to_e164` (country "84", Vietnam):

* ``+84 24 3825 1234``, ``84 24 3825 1234``, ``0084 24 3825 1234``, ``024 3825 1234``
  → ``+842438251234``. Spaces, dots, dashes and parentheses are ignored.
* A national number with its trunk ``0`` already stripped (``912345678``, 9–10 digits), as
  some trunks deliver it → ``+84912345678``.
* Pre-2018 eleven-digit mobiles (``0168 xxx xxxx``) are renumbered to today's ten-digit
  prefixes (``038 xxx xxxx``), so one customer keeps one identity across old CRM data.
* Left as-is (returned as bare digits, no ``+``): short internal extensions of 2–6 digits
  (``"1000"``) and service numbers ``1800xxxx``/``1800xxxxxx`` (toll-free) and
  ``1900xxxx``/``1900xxxxxx`` (premium). They are not reachable from abroad, so an E.164
  form would be a lie.
* Other countries: ``+<cc>…`` or ``00<cc>…`` is kept (digits only, 8–15 digits).

Anything else raises :class:`ValueError` with a message that says what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = [
    "Region",
    "REGIONS",
    "NORTH",
    "CENTRAL",
    "SOUTH",
    "to_e164",
    "national_number",
    "region_of",
    "is_mobile",
    "is_service_number",
    "is_extension",
]

NORTH = "north"
CENTRAL = "central"
SOUTH = "south"


@dataclass(frozen=True, slots=True)
class Region:
    """A province reached by a landline area code, and its macro-region.

    ``area_code`` is in national form with the trunk zero (``"024"``); ``region`` is one of
    ``"north"``, ``"central"``, ``"south"`` (Bắc / Trung incl. Tây Nguyên / Nam Bộ).
    """

    area_code: str
    province: str
    region: str


# Landline area codes after the 2017 renumbering (Decision 2036/QĐ-BTTTT), one per province of
# the 63 provinces before the 2025 merger; area codes were not changed by the merger, so the
# pre-merger province name is the most precise thing a number can tell.
_AREA_CODES: tuple[tuple[str, str, str], ...] = (
    # Bắc Bộ (25)
    ("024", "Hà Nội", NORTH),
    ("0203", "Quảng Ninh", NORTH),
    ("0204", "Bắc Giang", NORTH),
    ("0205", "Lạng Sơn", NORTH),
    ("0206", "Cao Bằng", NORTH),
    ("0207", "Tuyên Quang", NORTH),
    ("0208", "Thái Nguyên", NORTH),
    ("0209", "Bắc Kạn", NORTH),
    ("0210", "Phú Thọ", NORTH),
    ("0211", "Vĩnh Phúc", NORTH),
    ("0212", "Sơn La", NORTH),
    ("0213", "Lai Châu", NORTH),
    ("0214", "Lào Cai", NORTH),
    ("0215", "Điện Biên", NORTH),
    ("0216", "Yên Bái", NORTH),
    ("0218", "Hòa Bình", NORTH),
    ("0219", "Hà Giang", NORTH),
    ("0220", "Hải Dương", NORTH),
    ("0221", "Hưng Yên", NORTH),
    ("0222", "Bắc Ninh", NORTH),
    ("0225", "Hải Phòng", NORTH),
    ("0226", "Hà Nam", NORTH),
    ("0227", "Thái Bình", NORTH),
    ("0228", "Nam Định", NORTH),
    ("0229", "Ninh Bình", NORTH),
    # Trung Bộ and Tây Nguyên (19)
    ("0237", "Thanh Hóa", CENTRAL),
    ("0238", "Nghệ An", CENTRAL),
    ("0239", "Hà Tĩnh", CENTRAL),
    ("0232", "Quảng Bình", CENTRAL),
    ("0233", "Quảng Trị", CENTRAL),
    ("0234", "Thừa Thiên Huế", CENTRAL),
    ("0236", "Đà Nẵng", CENTRAL),
    ("0235", "Quảng Nam", CENTRAL),
    ("0255", "Quảng Ngãi", CENTRAL),
    ("0256", "Bình Định", CENTRAL),
    ("0257", "Phú Yên", CENTRAL),
    ("0258", "Khánh Hòa", CENTRAL),
    ("0259", "Ninh Thuận", CENTRAL),
    ("0252", "Bình Thuận", CENTRAL),
    ("0260", "Kon Tum", CENTRAL),
    ("0269", "Gia Lai", CENTRAL),
    ("0262", "Đắk Lắk", CENTRAL),
    ("0261", "Đắk Nông", CENTRAL),
    ("0263", "Lâm Đồng", CENTRAL),
    # Nam Bộ (19)
    ("028", "TP. Hồ Chí Minh", SOUTH),
    ("0251", "Đồng Nai", SOUTH),
    ("0254", "Bà Rịa – Vũng Tàu", SOUTH),
    ("0271", "Bình Phước", SOUTH),
    ("0274", "Bình Dương", SOUTH),
    ("0276", "Tây Ninh", SOUTH),
    ("0272", "Long An", SOUTH),
    ("0273", "Tiền Giang", SOUTH),
    ("0275", "Bến Tre", SOUTH),
    ("0270", "Vĩnh Long", SOUTH),
    ("0294", "Trà Vinh", SOUTH),
    ("0277", "Đồng Tháp", SOUTH),
    ("0296", "An Giang", SOUTH),
    ("0297", "Kiên Giang", SOUTH),
    ("0292", "Cần Thơ", SOUTH),
    ("0293", "Hậu Giang", SOUTH),
    ("0299", "Sóc Trăng", SOUTH),
    ("0291", "Bạc Liêu", SOUTH),
    ("0290", "Cà Mau", SOUTH),
)

REGIONS: Mapping[str, Region] = {code: Region(code, prov, reg) for code, prov, reg in _AREA_CODES}
"""Area code (national form, with trunk 0) → :class:`Region`."""

# Pre-2018 eleven-digit mobile prefixes → today's (MIC plan of 15 Sep – 15 Nov 2018).
_OLD_MOBILE: Mapping[str, str] = {
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036",
    "0167": "037", "0168": "038", "0169": "039",  # Viettel
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",  # MobiFone
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",  # VinaPhone
    "0186": "056", "0188": "058",  # Vietnamobile
    "0199": "059",  # Gmobile
}

_IGNORED = str.maketrans("", "", " .-()/\t")


def _clean(number: str) -> str:
    if not isinstance(number, str):
        raise ValueError(f"phone number must be a string, got {type(number).__name__}")
    s = number.strip().translate(_IGNORED)
    if not s:
        raise ValueError(f"phone number {number!r} is empty")
    plus = s.startswith("+")
    digits = s[1:] if plus else s
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(
            f"phone number {number!r} has characters other than digits, an optional leading "
            "'+', spaces, dots, dashes or parentheses"
        )
    return ("+" if plus else "") + digits


def is_extension(number: str) -> bool:
    """True for a short internal extension: 2–6 digits, not starting with 0."""
    return number.isascii() and number.isdigit() and 2 <= len(number) <= 6 and number[0] != "0"


def is_service_number(number: str) -> bool:
    """True for a Vietnamese 1800 (toll-free) or 1900 (premium) number, 8 or 10 digits."""
    return (
        number.isascii()
        and number.isdigit()
        and len(number) in (8, 10)
        and number[:4] in ("1800", "1900")
    )


def _vn_national(nsn: str, original: str) -> str:
    """Check a Vietnamese national significant number (no trunk 0) and return it."""
    if len(nsn) == 10 and nsn[0] == "1" and ("0" + nsn[:3]) in _OLD_MOBILE:
        # 01xx xxx xxxx: a pre-2018 mobile; renumber so one caller has one identity.
        nsn = _OLD_MOBILE["0" + nsn[:3]][1:] + nsn[3:]
    if nsn[0] == "2":
        if len(nsn) != 10:
            raise ValueError(
                f"phone number {original!r}: a Vietnamese landline (area code 02x) has 10 "
                f"digits after the trunk 0, got {len(nsn)}"
            )
        return nsn
    if nsn[0] in "35789":
        if len(nsn) != 9:
            raise ValueError(
                f"phone number {original!r}: a Vietnamese mobile (03x/05x/07x/08x/09x) has 9 "
                f"digits after the trunk 0, got {len(nsn)}"
            )
        return nsn
    raise ValueError(
        f"phone number {original!r}: no Vietnamese number starts with 0{nsn[0]} "
        "(landlines are 02x, mobiles 03x/05x/07x/08x/09x)"
    )


def to_e164(number: str, country: str = "84") -> str:
    """Normalize a phone number to E.164 (``+84912345678``).

    ``country`` is the calling code assumed for national forms (leading trunk ``0``); the
    Vietnamese rules (length checks, old mobile prefixes, bare ``84…``) apply when it is
    ``"84"``. Short extensions (2–6 digits) and 1800/1900 service numbers are returned
    unchanged as digits. Raises ``ValueError`` with the reason for anything else.
    """
    s = _clean(number)
    if s.startswith(("+", "00")):
        digits = s[1:] if s.startswith("+") else s[2:]
        if country == "84" and digits.startswith("84"):
            # "+84 0912…" is a common mistake; the trunk 0 does not belong after +84.
            return "+84" + _vn_national(digits[2:].lstrip("0") or "0", number)
        if not 8 <= len(digits) <= 15 or digits[0] == "0":
            raise ValueError(
                f"phone number {number!r}: an international number has 8–15 digits after "
                "'+' or '00' and does not start with 0"
            )
        return "+" + digits
    if is_service_number(s) or is_extension(s):
        return s
    if country != "84":
        if s[0] == "0" and 6 <= len(s) - 1 + len(country) <= 15:
            return "+" + country + s[1:]
        raise ValueError(f"phone number {number!r} is not a national number of +{country}")
    if s[0] == "0":
        return "+84" + _vn_national(s[1:] or "0", number)
    if s.startswith("84") and len(s) in (11, 12):
        return "+84" + _vn_national(s[2:], number)
    if len(s) in (9, 10):
        # A trunk that strips the leading 0 delivers the national significant number.
        return "+84" + _vn_national(s, number)
    raise ValueError(
        f"phone number {number!r}: expected +84…, 84…, 0… (Vietnam), 00/+ international, a "
        "2–6 digit extension or a 1800/1900 service number"
    )


def national_number(number: str) -> str:
    """The Vietnamese national form with trunk ``0`` (``0912345678``) of any accepted form.

    Extensions and service numbers are returned unchanged; foreign numbers raise ValueError.
    """
    e = to_e164(number)
    if not e.startswith("+"):
        return e
    if not e.startswith("+84"):
        raise ValueError(f"phone number {number!r} is not Vietnamese")
    return "0" + e[3:]


def is_mobile(number: str) -> bool:
    """True for a Vietnamese mobile number (any accepted form); False for anything else."""
    try:
        n = national_number(number)
    except ValueError:
        return False
    return len(n) == 10 and n[1] in "35789"


def region_of(number: str, extra: Mapping[str, Region] | None = None) -> Region | None:
    """The province and region of a Vietnamese landline by longest-prefix area-code match.

    Mobile, service, foreign and unparseable numbers give ``None``: a mobile number says
    nothing about where the caller is. ``extra`` maps further national-form prefixes (e.g.
    a tenant's own mobile ranges, ``"0912"``) to regions; it is consulted first, by the same
    longest-prefix rule, so configuration can override the built-in table.
    """
    try:
        n = national_number(number)
    except ValueError:
        return None
    if not n.startswith("0"):
        return None
    for table in (extra, REGIONS):
        if not table:
            continue
        # Area codes are 3–4 digits; try longest first. `extra` may hold longer prefixes.
        for length in range(min(len(n), 8), 1, -1):
            hit = table.get(n[:length])
            if hit is not None:
                return hit
    return None
