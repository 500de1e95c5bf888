"""Teacher construction from job-file sections."""

from __future__ import annotations

from distillery.operators.teachers.base import Teacher
from distillery.schemas.teacher_config import (
    OpenAITeacherConfig,
    ReplayTeacherConfig,
    TeacherConfig,
    VLLMTeacherConfig,
)


def build_teacher(name: str, config: TeacherConfig) -> Teacher:
    if isinstance(config, VLLMTeacherConfig):
        from distillery.operators.teachers.vllm_engine import VLLMTeacher

        return VLLMTeacher(name, config)
    if isinstance(config, OpenAITeacherConfig):
        from distillery.operators.teachers.openai_compat import OpenAITeacher

        return OpenAITeacher(name, config)
    if isinstance(config, ReplayTeacherConfig):
        from distillery.operators.teachers.replay import ReplayTeacher

        return ReplayTeacher(name, config)
    raise TypeError(f"no teacher backend for {type(config).__name__}")
