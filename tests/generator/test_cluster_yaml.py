"""cluster.yaml is a valid Ray cluster-launcher config (Ray's own prepare + validate)."""

from pathlib import Path

import yaml

CLUSTER_YAML = Path(__file__).resolve().parents[2] / "cluster.yaml"


def test_cluster_yaml_validates_with_ray():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load(CLUSTER_YAML.read_text())
    config = prepare_config(raw)
    validate_config(config)  # raises on any schema error
    assert config["provider"]["type"] == "aws"
    nodes = config["available_node_types"]
    head = nodes[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0 and not head["resources"].get("GPU")
    gpu_types = [n for n in nodes.values() if n["resources"].get("GPU", 0) >= 1]
    assert gpu_types and all(n["max_workers"] >= 1 for n in gpu_types)
    setup = " ".join(config["setup_commands"])
    assert "pip install" in setup and "gan-objseg" in setup and "constraints.txt" in setup
