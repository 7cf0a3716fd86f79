"""`tongdai whatif` on the real Kafka: a simulated morning written to the product's topics
as a worker writes them, read back from the tenant's partition and replayed."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from deploy import whatif, whatif_sample
from routing.contract import topics
from streams.app import ensure_topics
from streams.settings import load as worker_settings

pytestmark = [pytest.mark.streams, pytest.mark.stack]


def test_whatif_reads_the_tenants_log_and_compares(local_stack, tmp_path, capsys):
    tenant = f"w{uuid.uuid4().hex[:10]}.test"
    env = {"TONGDAI_KAFKA_BOOTSTRAP": local_stack.kafka_bootstrap}
    settings = worker_settings(env)
    ensure_topics(local_stack.kafka_bootstrap, settings.topic_partitions)
    run = whatif_sample.simulate(tenant, seed=3, hours=0.5)
    assert whatif_sample.publish(run, local_stack.kafka_bootstrap) == len(run.log)
    other = tmp_path / "other.yaml"
    other.write_text(f"tenant: {tenant}\nagents:\n"
                     + "".join(f"  x{i}: {{extension: '20{i}0', queues: {{support: {{}}}}}}\n"
                               for i in range(3)))
    start = whatif_sample.START
    args = ["--tenant", tenant, "--from", start.isoformat(),
            "--to", (start + dt.timedelta(minutes=30)).isoformat(),
            "--config", str(other), "--json"]
    assert whatif.main(args, env) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    happened = result["happened"]["support"]
    facts = [e for t, e in run.log if t == topics.CC_EVENTS and e.type == "call_enqueued"]
    assert happened["offered"] == len(facts) == result["callers"]
    assert result["what_if"]["support"]["answered"] >= result["replayed"]["support"]["answered"]
    nobody = tmp_path / "nobody.yaml"
    nobody.write_text("tenant: nobody.test\n")
    assert whatif.main(["--tenant", "nobody.test"] + args[2:6] + ["--config", str(nobody)],
                       env) == 1, "another tenant's log holds none of these callers"
