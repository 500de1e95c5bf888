"""Stage 4, journey: wrong-then-corrected traces built from a prompt's rejected and accepted samples.

The slot exists so that stage numbers are fixed; the stage does nothing until the job turns it on.
"""

from __future__ import annotations

from distillery.pipeline.stages.base import Stage, StageContext, StageResult


class JourneyStage(Stage):
    name = "journey"
    reads = ("samples", "prompts")

    def run(self, context: StageContext) -> StageResult:
        return StageResult(report={"traces": 0, "enabled": False})
