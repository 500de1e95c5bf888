"""Teacher sections of the job file."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from distillery.schemas.base import Section


class RepetitionDetectionConfig(Section):
    """vLLM's loop cut (`SamplingParams.repetition_detection`): a request whose last tokens are one
    pattern of `min_pattern_size`..`max_pattern_size` tokens repeated `min_count` times in a row
    finishes at once with finish reason `repetition`, instead of looping to `max_tokens`.

    The defaults are conservative: a run of one token must reach min_pattern_size x min_count
    (32) tokens and a looping sentence must come back whole four times, which legitimate reasoning
    practically never does; a looping trace is cut after a few repetitions, not at `max_tokens`.
    A smaller min_pattern_size cuts numbers (digits are single tokens: "1240000"); a larger
    max_pattern_size costs the scheduler CPU on every decoded token (vLLM tries each size).
    """

    min_pattern_size: int = Field(default=8, ge=1, description="shortest repeating pattern, in tokens")
    max_pattern_size: int = Field(
        default=128, ge=1, description="longest repeating pattern, in tokens (vLLM checks each size per token)"
    )
    min_count: int = Field(default=4, ge=2, description="repetitions in a row that end the request")

    @model_validator(mode="after")
    def _sizes(self) -> RepetitionDetectionConfig:
        if self.min_pattern_size > self.max_pattern_size:
            raise ValueError(
                f"min_pattern_size ({self.min_pattern_size}) must not exceed max_pattern_size ({self.max_pattern_size})"
            )
        return self


class SamplingConfig(Section):
    n: int = Field(default=4, ge=1, le=128, description="samples per prompt per round")
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, ge=1)
    seed: int = Field(default=0, description="base seed; each request's seed derives from it and its id")
    repetition_detection: RepetitionDetectionConfig | None = Field(
        default_factory=RepetitionDetectionConfig,
        description="cut loops while they decode (finish reason `repetition`); null: off",
    )
    thinking_token_budget: int | None = Field(
        default=None,
        ge=1,
        description="most tokens of reasoning before vLLM forces the end of the think block; needs a reasoning "
        "parser (vllm: engine_kwargs {reasoning_parser: deepseek_r1}; openai: a vllm serve started with one)",
    )

    @model_validator(mode="after")
    def _thinking_within_max_tokens(self) -> SamplingConfig:
        if self.thinking_token_budget is not None and self.thinking_token_budget >= self.max_tokens:
            raise ValueError(
                f"thinking_token_budget ({self.thinking_token_budget}) must be below max_tokens ({self.max_tokens}), "
                "or no tokens are left for the answer"
            )
        return self


class TokenPrice(Section):
    """What a teacher's tokens cost, for the live cost and the projected cost to the targets."""

    input: float = Field(ge=0.0, description="price per million prompt tokens")
    output: float = Field(ge=0.0, description="price per million completion tokens")


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
    price_per_million_tokens: TokenPrice | None = Field(default=None, description="for the live cost estimate")

    @model_validator(mode="after")
    def _thinking_budget_parser(self) -> VLLMTeacherConfig:
        # vLLM refuses such requests one by one at run time; say it before any model loads.
        if self.sampling.thinking_token_budget is not None and not self.engine_kwargs.get("reasoning_parser"):
            raise ValueError(
                "sampling.thinking_token_budget needs vLLM's reasoning parser: add "
                "engine_kwargs: {reasoning_parser: deepseek_r1} (or the parser of your model)"
            )
        return self


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
    server: Literal["vllm", "generic"] = Field(
        default="generic",
        description="vllm: the server is `vllm serve`, and sampling.repetition_detection and "
        "thinking_token_budget go in each request body; generic: other servers, which do not know them "
        "(they are not sent)",
    )
    price_per_million_tokens: TokenPrice | None = Field(default=None, description="for the live cost estimate")

    @model_validator(mode="after")
    def _thinking_budget_server(self) -> OpenAITeacherConfig:
        if self.sampling.thinking_token_budget is not None and self.server != "vllm":
            raise ValueError(
                "sampling.thinking_token_budget is a vLLM extension: set server: vllm (a vllm serve started "
                "with --reasoning-parser), or remove it"
            )
        return self

    @field_validator("base_url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (got {url!r})")
        return url.rstrip("/")


class ReplayFields(Section):
    """Which columns of a recorded-generations file hold what; `None`: the file has no such column."""

    problem: str = Field(default="problem", description="the prompt's text, matched to the job's prompts")
    responses: str | None = Field(
        default="generations", description="layout per_prompt: the list of responses (OpenR1-Math's `generations`)"
    )
    response: str | None = Field(
        default="generation", description="layout per_response: one response (NeMo-Skills' `generation`)"
    )
    reasoning: str | None = Field(
        default=None, description="the chain of thought, where it is kept apart from the response (a list per_prompt)"
    )
    finish_reason: str | None = Field(
        default=None, description="why each response ended (`length` marks a truncated one); none: all `stop`"
    )
    completion_tokens: str | None = Field(
        default=None, description="each response's token count; none: estimated from its length (chars_per_token)"
    )


class ReplayTeacherConfig(Section):
    """Recorded generations (an API run, an OpenR1-Math or NeMo-Skills dump) as a teacher: no engine
    loads; each prompt's recorded responses come back in round 0 (whatever `sampling.n` says) and go
    through the same verification, filters, journeys, dedup and dataset as live samples.

    The job's sources name the prompts (often the same file); a prompt is matched to its responses by
    its text, rendered with `prompt_template` and normalized. A prompt with no recorded response is
    dead-lettered (permanent). In a cluster the file must be readable at the same path on every node.
    """

    backend: Literal["replay"]
    path: str = Field(description="JSONL or Parquet file, or a glob (output-rs*.jsonl), relative to the job file")
    format: Literal["jsonl", "parquet"] | None = Field(default=None, description="none: from the file suffix")
    layout: Literal["per_prompt", "per_response"] = Field(
        default="per_prompt",
        description="per_prompt: one row per prompt with a list of responses; per_response: one row per "
        "response, grouped by the problem column",
    )
    fields: ReplayFields = Field(default_factory=ReplayFields)
    model: str = Field(default="replay", description="the model that wrote the responses (kept with each sample)")
    chars_per_token: float = Field(
        default=4.0, gt=0, description="token counts are estimated as characters / this, where the file has none"
    )
    replicas: int = Field(default=1, ge=1, description="replay replicas, each a Ray actor with its own verifiers")
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs each replica actor asks Ray for")
    system_prompt: str | None = None
    prompt_template: str = Field(default="{problem}", description="user turn; {problem} is replaced")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    price_per_million_tokens: TokenPrice | None = Field(
        default=None, description="what the recorded tokens cost when they were made, for the cost report"
    )

    @model_validator(mode="after")
    def _files(self, info: ValidationInfo) -> ReplayTeacherConfig:
        # Resolved here, once: the replicas may run in another working directory (ray job submit).
        base = Path((info.context or {}).get("base_dir") or ".")
        pattern = self.path if Path(self.path).is_absolute() else str(base / self.path)
        if not sorted(glob.glob(pattern)):
            raise ValueError(f"replay file not found: {pattern} (paths are relative to the job file)")
        self.path = str(Path(pattern).absolute())
        if self.format is None and not all(p.endswith((".jsonl", ".parquet")) for p in glob.glob(pattern)):
            raise ValueError(f"cannot tell the format of {pattern} from its suffix: set format: jsonl or parquet")
        missing = "responses" if self.layout == "per_prompt" else "response"
        if getattr(self.fields, missing) is None:
            raise ValueError(f"layout {self.layout} needs fields.{missing}: the column that holds the response(s)")
        return self


def _backend(value: Any) -> str:
    # `backend` may be left out of a vLLM section: job files written before other backends existed.
    if isinstance(value, dict):
        return str(value.get("backend", "vllm"))
    return str(getattr(value, "backend", "vllm"))


TeacherConfig = Annotated[
    Annotated[VLLMTeacherConfig, Tag("vllm")]
    | Annotated[OpenAITeacherConfig, Tag("openai")]
    | Annotated[ReplayTeacherConfig, Tag("replay")],
    Discriminator(
        _backend,
        custom_error_type="unknown_backend",
        custom_error_message="unknown teacher backend; use backend: vllm, openai or replay",
    ),
]
