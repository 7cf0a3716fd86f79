"""`tongdai whatif` without Kafka: a simulated history (the real router on the ESL
simulator) replayed through the router's policy, as configured and with another
configuration."""
from __future__ import annotations

from pathlib import Path

import pytest

from deploy import whatif, whatif_sample

pytestmark = pytest.mark.routing
ROOT = Path(__file__).resolve().parents[2]
TENANT = "whatif.unit"
START = int(whatif_sample.START.timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def past() -> whatif.History:
    run = whatif_sample.simulate(TENANT, seed=2, hours=1.0)
    return whatif.history([env for _, env in run.log], TENANT, START, START + 3600 * 10**6)


def test_the_log_gives_callers_agents_and_what_became_of_them(past):
    assert len(past.callers) > 80
    assert {c.queue for c in past.callers} == {"support"}
    assert all(c.answered or c.abandoned for c in past.callers)
    assert all(c.talk_us for c in past.callers if c.answered)
    assert [k for _, a, k, _ in past.agent_events if a == "a5"][-2:] == ["login", "pause"], \
        "a5 went to lunch at 08:45 (in the period), the router-made states are not replayed"
    assert 1_500_000 <= past.ring_us["*"] <= 4_000_000, "phones answered after 1.5–4 s"
    assert past.config[("queue", "support")]["strategy"] == "longest-idle-agent"


def test_the_replay_as_configured_comes_close_to_what_happened(past):
    result = whatif.compare(past, {})
    happened, replayed = result["happened"]["*"], result["replayed"]["*"]
    assert happened["offered"] == replayed["offered"] == len(past.callers)
    assert abs(happened["answered"] - replayed["answered"]) <= 0.05 * happened["offered"]
    assert abs(happened["service_level"] - replayed["service_level"]) <= 0.08
    assert result["what_if"] == result["replayed"], "no change, same replay"
    assert whatif.compare(past, {}) == result, "deterministic"


def test_more_agents_answer_more_callers_sooner(past):
    more = whatif.load_config(str(ROOT / "deploy/local/demo/whatif-more-agents.yaml"),
                              "whatif.sample")
    result = whatif.compare(past, more)
    before, after = result["replayed"]["*"], result["what_if"]["*"]
    assert after["answered"] > before["answered"] and after["abandoned"] < before["abandoned"]
    assert after["service_level"] > before["service_level"]
    assert any("patience" in c for c in result["caveats"])
    text = whatif.table(result)
    assert "happened" in text and "what-if" in text and "Caveats" in text


def test_a_config_file_of_another_tenant_or_a_bad_strategy_is_refused(tmp_path):
    other = tmp_path / "o.yaml"
    other.write_text("tenant: beta\nqueues: {support: {}}\n")
    with pytest.raises(SystemExit, match="tenant is 'beta'"):
        whatif.load_config(str(other), TENANT)
    other.write_text(f"tenant: {TENANT}\nqueues: {{support: {{strategy: fastest}}}}\n")
    with pytest.raises(SystemExit, match="strategy"):
        whatif.load_config(str(other), TENANT)
    with pytest.raises(SystemExit, match="--from"):
        whatif.main(["--tenant", TENANT, "--from", "yesterday", "--to", "2026-11-23T10:00+07:00",
                     "--config", str(other)])
