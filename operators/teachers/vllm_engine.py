"""A vLLM engine as a teacher: the async engine, so many prompts decode at once (continuous
batching) and each prompt's resampling loop runs while the others decode.

The same code runs on GPUs (`pip install distillery[gpu]`) and on vLLM's CPU backend
(`distillery[cpu]`); only the installed vLLM build differs.
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

from distillery.operators.teachers.base import Completion, Teacher, TeacherResponse
from distillery.operators.teachers.bundled import resolve_model
from distillery.schemas.records import FailureKind
from distillery.schemas.teacher_config import SamplingConfig, VLLMTeacherConfig

if TYPE_CHECKING:
    from vllm.sampling_params import RepetitionDetectionParams


def engine_args(config: VLLMTeacherConfig, on_cpu: bool) -> dict[str, object]:
    """vLLM engine arguments for a teacher section (the job's `engine_kwargs` win)."""
    args: dict[str, object] = {
        "model": resolve_model(config.model),
        "tensor_parallel_size": config.tensor_parallel_size,
        "dtype": config.dtype,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "enforce_eager": config.enforce_eager,
        "enable_prefix_caching": config.enable_prefix_caching,
        "seed": config.sampling.seed,
        "disable_log_stats": True,
    }
    if config.max_model_len is not None:
        args["max_model_len"] = config.max_model_len
    if config.max_num_seqs is not None:
        args["max_num_seqs"] = config.max_num_seqs
    if on_cpu:
        # vLLM's CPU backend crashes ("CPU Generator does not use offset") when it discards the token
        # of a seeded request whose prefill was chunked; without chunked prefill nothing is discarded.
        args["enable_chunked_prefill"] = False
        args["max_num_batched_tokens"] = max(config.max_model_len or 8192, 2048)
    args.update(config.engine_kwargs)
    return args


def failure_kind(exc: BaseException) -> FailureKind:
    """permanent: the request itself is invalid (vLLM's client errors: a prompt longer than the context,
    bad sampling parameters; older checks raise ValueError). Anything else is the engine's fault."""
    from vllm.exceptions import VLLMClientError

    return "permanent" if isinstance(exc, (VLLMClientError, ValueError)) else "transient"


def repetition_detection(sampling: SamplingConfig) -> RepetitionDetectionParams | None:
    """vLLM's loop cut for a sampling section (None: off)."""
    from vllm.sampling_params import RepetitionDetectionParams

    config = sampling.repetition_detection
    if config is None:
        return None
    return RepetitionDetectionParams(
        max_pattern_size=config.max_pattern_size, min_pattern_size=config.min_pattern_size, min_count=config.min_count
    )


class VLLMTeacher(Teacher):
    def __init__(self, name: str, config: VLLMTeacherConfig) -> None:
        # Imported here: building a job or a test double must not need vLLM installed.
        from vllm import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
        self.name = name
        self.model = config.model
        self.sampling = config.sampling
        self.config = config
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_args(config, current_platform.is_cpu())))
        self.tokenizer = self.engine.get_tokenizer()
        self._request_numbers = itertools.count()

    def render(self, messages: list[dict[str, str]]) -> str:
        if messages[-1]["role"] == "assistant":
            # A prefilled assistant turn: the template leaves it open, so the engine continues it.
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=False, continue_final_message=True
            )
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    async def continue_turn(
        self, messages: list[dict[str, str]], prefill: str, *, seed: int, request_id: str
    ) -> TeacherResponse:
        turn = [*messages, {"role": "assistant", "content": prefill}]
        return await self.sample(turn, n=1, seed=seed, request_id=request_id)

    async def sample(self, messages: list[dict[str, str]], *, n: int, seed: int, request_id: str) -> TeacherResponse:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            n=n,
            temperature=self.sampling.temperature,
            top_p=self.sampling.top_p,
            max_tokens=self.sampling.max_tokens,
            seed=seed,
            output_kind=RequestOutputKind.FINAL_ONLY,
            repetition_detection=repetition_detection(self.sampling),
            thinking_token_budget=self.sampling.thinking_token_budget,
        )
        # vLLM needs request ids unique per engine: a retried shard reuses sample ids.
        engine_request_id = f"{request_id}#{next(self._request_numbers)}"
        final = None
        try:
            async for output in self.engine.generate({"prompt": self.render(messages)}, params, engine_request_id):
                final = output
        except Exception as exc:  # an over-long prompt or an engine error fails this request only
            return TeacherResponse.failed(f"{type(exc).__name__}: {exc}", failure_kind(exc))
        if final is None:
            return TeacherResponse.failed("engine returned no output", "transient")
        completions = [
            Completion(
                index=out.index,
                text=out.text,
                completion_tokens=len(out.token_ids),
                finish_reason=str(out.finish_reason or "unknown"),
            )
            for out in sorted(final.outputs, key=lambda o: o.index)
        ]
        return TeacherResponse(prompt_tokens=len(final.prompt_token_ids or []), completions=completions)

    def healthy(self) -> bool:
        # A dead EngineCore does not come back: every later request raises EngineDeadError.
        return not self.engine.errored

    def close(self) -> None:
        self.engine.shutdown()
