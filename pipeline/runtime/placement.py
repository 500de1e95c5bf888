"""Where a teacher replica runs: the Ray resources its actor asks for.

One replica owns one engine on `tensor_parallel_size` GPUs. With one GPU the actor holds it; with
more, a placement group reserves them together (STRICT_PACK: tensor parallelism wants one node) and
vLLM's Ray executor places its workers in it.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from distillery.schemas.teacher_config import TeacherConfig, VLLMTeacherConfig


def uses_gpu(config: TeacherConfig, cluster_gpus: float) -> bool:
    if not isinstance(config, VLLMTeacherConfig):
        return False
    if config.device == "auto":
        return cluster_gpus > 0
    return config.device == "gpu"


def replica_options(config: TeacherConfig, cluster_gpus: float) -> dict[str, Any]:
    """Ray actor options for one replica (creates its placement group when one is needed)."""
    options: dict[str, Any] = {"num_cpus": getattr(config, "num_cpus", 1.0), "num_gpus": 0}
    if not uses_gpu(config, cluster_gpus):
        return options
    assert isinstance(config, VLLMTeacherConfig)
    tp = config.tensor_parallel_size
    if tp > cluster_gpus:
        raise ValueError(f"tensor_parallel_size {tp} needs {tp} GPUs; the cluster has {cluster_gpus:g}")
    if tp == 1:
        options["num_gpus"] = 1
        return options
    group = placement_group([{"GPU": 1, "CPU": 1}] * tp, strategy="STRICT_PACK")
    options["num_cpus"] = 0
    options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
        placement_group=group, placement_group_capture_child_tasks=True
    )
    return options


def release_placement(options: dict[str, Any]) -> None:
    """Give back the placement group `replica_options` reserved, if any (its actor is gone): a group
    outlives its actor, and would hold the GPUs and CPUs for the rest of the run."""
    strategy = options.get("scheduling_strategy")
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        remove_placement_group(strategy.placement_group)


def engine_overrides(config: TeacherConfig, cluster_gpus: float) -> dict[str, Any]:
    """Engine arguments that follow from placement (multi-GPU engines use vLLM's Ray executor)."""
    if uses_gpu(config, cluster_gpus) and isinstance(config, VLLMTeacherConfig) and config.tensor_parallel_size > 1:
        return {"distributed_executor_backend": "ray"}
    return {}


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0))
