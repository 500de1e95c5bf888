"""Teacher sections of the job file."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator


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


class OpenAITeacherConfig(Section):
    """Any server with the OpenAI chat-completions API: `vllm serve`, SGLang, DeepSeek's API and the like.

    The API key is read from the environment variable `api_key_env` names (the job file and every
    output hold only that name, never the key). On a Ray cluster, pass the variable to the job:
    `ray job submit --runtime-env-json '{"env_vars": {"DEEPSEEK_API_KEY": "..."}}'`.
    """

    backend: Literal["openai"]
    model: str = Field(description="the model name the server knows (`--served-model-name` for vllm serve)")
    base_url: str = Field(description="the API root, e.g. http://127.0.0.1:8000/v1 or https://api.deepseek.com")
    api_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the API key; none: a local server without authentication",
    )
    concurrency: int = Field(default=32, ge=1, description="requests in flight at once, per replica")
    timeout_s: float = Field(default=600.0, gt=0, description="one request's deadline (long generations are slow)")
    max_retries: int = Field(
        default=4, ge=0, description="retries of a request that failed on a connection error, rate limit or 5xx"
    )
    retry_initial_s: float = Field(default=1.0, gt=0, description="first backoff; it grows exponentially, jittered")
    retry_max_s: float = Field(default=60.0, gt=0, description="longest backoff between two attempts")
    samples_per_request: int | None = Field(
        default=None,
        ge=1,
        description="the most samples one request asks for (`n`); 1 for servers without `n` (each sample is "
        "its own request, with its own seed); none: all n in one request",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="fields added to each request, e.g. {top_k: 20} or vLLM's {return_token_ids: true} "
        "(exact per-sample token counts when n > 1)",
    )
    replicas: int = Field(default=1, ge=1, description="client replicas, each a Ray actor with its own verifiers")
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs each replica actor asks Ray for")
    system_prompt: str | None = None
    prompt_template: str = Field(default="{problem}", description="user turn; {problem} is replaced")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)

    @field_validator("base_url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (got {url!r})")
        return url.rstrip("/")


def _backend(value: Any) -> str:
    # `backend` may be left out of a vLLM section: job files written before other backends existed.
    if isinstance(value, dict):
        return str(value.get("backend", "vllm"))
    return str(getattr(value, "backend", "vllm"))


TeacherConfig = Annotated[
    Annotated[VLLMTeacherConfig, Tag("vllm")] | Annotated[OpenAITeacherConfig, Tag("openai")],
    Discriminator(
        _backend,
        custom_error_type="unknown_backend",
        custom_error_message="unknown teacher backend; use backend: vllm or backend: openai",
    ),
]
