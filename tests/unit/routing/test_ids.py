"""Deterministic ids (routing.ids): the ids made before stay the same, and no two different
sequences of parts share an id."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.contract import deterministic_id
from routing.contract.envelope import TONGDAI_NAMESPACE
from routing.decisions import NAMESPACE, make_id
from routing.ids import id_name

pytestmark = pytest.mark.routing

CALL = "3f2a1c9e-0000-4000-8000-000000000001"


def test_a_part_holding_the_separator_no_longer_collides() -> None:
    assert make_id("a:b", "c") != make_id("a", "b:c")
    assert make_id("a:b", "c") != make_id("a", "b", "c")
    assert deterministic_id("a\x1fb", "c") != deterministic_id("a", "b\x1fc")
    assert deterministic_id("") != deterministic_id()


def test_decision_ids_made_before_are_unchanged() -> None:
    # Values of the former `uuid.uuid5(NAMESPACE, ":".join(...))`, as offers and overflows
    # on the topics and in the routers' saved state carry them.
    assert make_id("offer", CALL, 0) == "bf6adf89-06e6-569f-9236-f79dab8c153c"
    assert make_id("overflow", CALL, "sales", 1763800000123456) == \
        "a26fccb1-71a7-5289-ae51-03f57ba25940"


SAFE_TEXT = st.text(st.characters(blacklist_characters=":\x1f\x00", blacklist_categories=("Cs",)),
                    max_size=12)


@given(st.lists(st.one_of(SAFE_TEXT, st.integers()), max_size=5).filter(
    lambda parts: [str(p) for p in parts] != [""]))
def test_without_the_separator_ids_are_the_plain_uuid5_of_the_join(parts: list) -> None:
    assert make_id(*parts) == str(uuid.uuid5(NAMESPACE, ":".join(map(str, parts))))
    assert deterministic_id(*parts) == str(
        uuid.uuid5(TONGDAI_NAMESPACE, "\x1f".join(map(str, parts))))


# Few characters, so that different sequences whose plain join would be equal come up often.
TRICKY = st.lists(st.text(st.sampled_from(["a", ":", "\x00", "\\", '"']), max_size=3),
                  max_size=4)


@given(TRICKY, TRICKY)
def test_different_sequences_never_share_a_name(a: list[str], b: list[str]) -> None:
    if a != b:
        assert id_name(tuple(a), ":") != id_name(tuple(b), ":")


@given(TRICKY)
def test_the_name_is_a_function_of_the_parts(parts: list[str]) -> None:
    assert make_id(*parts) == str(uuid.uuid5(NAMESPACE, id_name(tuple(parts), ":")))
