"""The local stack's Kafka layout, without starting anything: one broker as always, or a
cluster (`tongdai stack up --brokers 3`) with its ports, voters and replication."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from deploy.local import settings as stack_settings
from deploy.local import stack
from routing.contract.environ import SettingsError

pytestmark = pytest.mark.stack


def props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))


def test_one_broker_is_configured_as_before(tmp_path: Path):
    s = stack_settings.load({"TONGDAI_STACK_DIR": str(tmp_path)})
    assert s.kafka_brokers == 1 and s.kafka_bootstrap == "127.0.0.1:9092"
    (node,) = stack.kafka_nodes(s)
    assert node.name == "kafka" and node.dir == tmp_path / "kafka"
    conf = props(node.config())
    assert conf["node.id"] == "1"
    assert conf["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert conf["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor", "min.insync.replicas",
                "transaction.state.log.min.isr"):
        assert conf[key] == "1", key
    assert "-Xmx1024m" in node.command()
    assert [n.name for n in stack.services(s)] == ["kafka", "clickhouse"]


def test_a_cluster_of_three_has_its_own_ports_voters_and_replication(tmp_path: Path):
    s = stack_settings.load({"TONGDAI_STACK_DIR": str(tmp_path), "TONGDAI_KAFKA_BROKERS": "3"})
    assert s.kafka_bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert (s.kafka_replication, s.kafka_min_insync) == (3, 2)
    nodes = stack.kafka_nodes(s)
    assert [n.name for n in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [n.ports() for n in nodes] == [[9092, 9093], [9094, 9095], [9096, 9097]]
    voters = "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    for i, node in enumerate(nodes, 1):
        conf = props(node.config())
        assert node.dir == tmp_path / f"kafka-{i}"
        assert conf["node.id"] == str(i) and conf["controller.quorum.voters"] == voters
        assert conf["log.dirs"] == f"{tmp_path}/kafka-{i}/data"
        assert conf["default.replication.factor"] == conf["offsets.topic.replication.factor"] == "3"
        assert conf["min.insync.replicas"] == conf["transaction.state.log.min.isr"] == "2"
        assert not node.adopts_foreign
    assert "-Xmx512m" in nodes[0].command()


def test_the_cluster_size_and_ports_are_checked():
    with pytest.raises(SettingsError, match="TONGDAI_KAFKA_BROKERS=0: must be 1 to 9"):
        stack_settings.load({"TONGDAI_KAFKA_BROKERS": "0"})
    # node 3's client port would be ClickHouse's
    with pytest.raises(SettingsError, match="ports must differ"):
        stack_settings.load({"TONGDAI_KAFKA_BROKERS": "3", "TONGDAI_KAFKA_PORT": "8996"})
    with pytest.raises(SettingsError, match="must be a TCP port"):
        stack_settings.load({"TONGDAI_KAFKA_BROKERS": "3", "TONGDAI_KAFKA_PORT": "65533",
                             "TONGDAI_KAFKA_CONTROLLER_PORT": "9093"})
    assert stack_settings.load({"TONGDAI_KAFKA_BROKERS": "2"}).kafka_min_insync == 1


def test_all_nodes_share_one_cluster_id_and_a_size_change_is_refused(tmp_path: Path):
    s = stack_settings.load({"TONGDAI_STACK_DIR": str(tmp_path), "TONGDAI_KAFKA_BROKERS": "3"})
    ids = {n.cluster_id() for n in stack.kafka_nodes(s)}
    assert len(ids) == 1
    assert json.loads((tmp_path / "kafka-cluster.json").read_text())["brokers"] == 3
    with pytest.raises(stack.StackError, match="formatted with 3 brokers"):
        stack.kafka_up(dataclasses.replace(s, kafka_brokers=5), log=lambda _: None)


def test_cluster_ids_never_look_like_options():
    assert not any(stack.new_cluster_id().startswith("-") for _ in range(2000))


def test_status_and_up_follow_a_running_cluster(tmp_path: Path, monkeypatch):
    s = stack_settings.load({"TONGDAI_STACK_DIR": str(tmp_path)})
    assert stack.resolve(s).kafka_brokers == 1
    assert stack.resolve(s, 3).kafka_brokers == 3
    stack.cluster_record(dataclasses.replace(s, kafka_brokers=3), create=True)
    assert stack.resolve(s).kafka_brokers == 1  # recorded, but none of its nodes runs
    monkeypatch.setattr(stack.Kafka, "pid", lambda self: 4242 if self.node == 2 else None)
    monkeypatch.setattr(stack.Service, "health", lambda self: stack.Health(self.name, False, ""))
    assert stack.resolve(s).kafka_brokers == 3
    assert [h.name for h in stack.status(s)] == ["kafka-1", "kafka-2", "kafka-3", "clickhouse"]
    with pytest.raises(stack.StackError, match="3-broker cluster runs"):
        stack.kafka_up(s, log=lambda _: None)


def test_a_running_single_broker_blocks_a_cluster_on_its_ports(tmp_path: Path, monkeypatch):
    s = stack_settings.load({"TONGDAI_STACK_DIR": str(tmp_path), "TONGDAI_KAFKA_BROKERS": "3"})
    monkeypatch.setattr(stack.Kafka, "pid", lambda self: 4242 if self.node is None else None)
    with pytest.raises(stack.StackError, match="single broker runs.*tongdai stack down"):
        stack.kafka_up(s, log=lambda _: None)


@pytest.mark.parametrize("argv", [["up", "--brokers"], ["up", "--brokers", "ten"],
                                  ["status", "--brokers", "0"]])
def test_a_bad_brokers_option_is_named(argv, capsys, tmp_path: Path):
    s = stack_settings.load({"TONGDAI_STACK_DIR": str(tmp_path)})
    assert stack.main(argv, s) == 2
    assert "--brokers takes a number of brokers from 1 to 9" in capsys.readouterr().err
