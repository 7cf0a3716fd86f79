"""Settings: defaults in code, TONGDAI_* overrides, clear errors naming the variable."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from deploy.local import settings as stack_settings
from routing.contract.environ import SettingsError, from_environ

pytestmark = pytest.mark.contract


@dataclass(frozen=True)
class Example:
    name: str = "x"
    count: int = 1
    ratio: float = 0.5
    enabled: bool = False
    nodes: tuple[str, ...] = ()
    optional: int | None = None


def test_defaults_come_from_code():
    assert from_environ(Example, {}) == Example()


def test_overrides_are_converted_by_type():
    env = {"TONGDAI_NAME": "y", "TONGDAI_COUNT": "7", "TONGDAI_RATIO": "2.5",
           "TONGDAI_ENABLED": "yes", "TONGDAI_NODES": "a:1:p, b:2:q", "TONGDAI_OPTIONAL": "3",
           "OTHER_COUNT": "99"}
    assert from_environ(Example, env) == Example("y", 7, 2.5, True, ("a:1:p", "b:2:q"), 3)


@pytest.mark.parametrize("var, value, rule", [
    ("TONGDAI_COUNT", "seven", "must be an integer"),
    ("TONGDAI_RATIO", "half", "must be a number"),
    ("TONGDAI_ENABLED", "maybe", "must be one of true/false"),
])
def test_bad_values_name_the_variable_and_rule(var, value, rule):
    with pytest.raises(SettingsError, match=f"{var}=.*{rule}"):
        from_environ(Example, {var: value})


def test_stack_settings_check_ports():
    with pytest.raises(SettingsError, match="TONGDAI_KAFKA_PORT=70000: must be a TCP port"):
        stack_settings.load({"TONGDAI_KAFKA_PORT": "70000"})
    with pytest.raises(SettingsError, match="ports must differ"):
        stack_settings.load({"TONGDAI_KAFKA_PORT": "9000"})
    assert stack_settings.load({}).kafka_bootstrap == "127.0.0.1:9092"
