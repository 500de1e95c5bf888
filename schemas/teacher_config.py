"""Teacher sections of the job file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingConfig(Section):
    n: int = Field(default=4, ge=1, le=128, description="samples per prompt per round")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, ge=1)
    seed: int = Field(default=0, description="base seed; each request's seed derives from it and its id")


class VLLMTeacherConfig(Section):
    """A vLLM engine per Ray actor replica (GPU, or vLLM's CPU backend)."""

    backend: Literal["vllm"] = "vllm"
    model: str = Field(description="Hugging Face name or path, or bundled:smollm2-135m")
    tensor_parallel_size: int = Field(default=1, ge=1)
    dtype: str = "auto"
    max_model_len: int | None = Field(default=None, ge=64)
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0.0, le=1.0, description="on the CPU backend: share of the NUMA node's memory for KV"
    )
    enforce_eager: bool = False
    enable_prefix_caching: bool = True
    max_num_seqs: int | None = Field(default=None, ge=1)
    replicas: int = Field(default=1, ge=1, description="engine replicas, each a Ray actor")
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs each replica actor asks Ray for")
    device: Literal["auto", "cpu", "gpu"] = Field(
        default="auto", description="gpu: ask Ray for tensor_parallel_size GPUs; auto: gpu if the cluster has any"
    )
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to vLLM's engine args")
    system_prompt: str | None = None
    prompt_template: str = Field(default="{problem}", description="user turn; {problem} is replaced")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)


TeacherConfig = VLLMTeacherConfig
