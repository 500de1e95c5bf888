"""Benchmark decontamination: the detectors' matches -> one decision per text, with its evidence.

A text is contaminated when an n-gram match or an embedding hit (see `EmbeddingDetector`) says so;
with a judge, embedding matches from the judge's `low` up that are not hits are put to it, best
first, and a SAME makes the text contaminated. Every match (judged ones too, whatever the
verdict) is kept as evidence for the audit table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distillery.operators.counters import OperatorCounters
from distillery.operators.decontam.benchmarks import BenchmarkItem, load_benchmarks
from distillery.operators.decontam.embedding import EmbeddingDetector
from distillery.operators.decontam.judge import ContaminationJudge
from distillery.operators.decontam.matches import Match
from distillery.operators.decontam.ngram import NgramDetector
from distillery.schemas.dedup_config import DecontaminationConfig
from distillery.schemas.dedup_records import DecontamAudit, audit_id

AUDIT_TEXT_CHARS = 4000
_DETECTOR_PRIORITY = {"ngram": 0, "embedding": 1, "judge": 2}


@dataclass(slots=True)
class Decision:
    contaminated: bool = False
    match: Match | None = None
    """The match that decided (n-gram before embedding before judge; then the highest score)."""
    evidence: list[Match] = field(default_factory=list)


class Decontaminator:
    def __init__(
        self,
        items: Sequence[BenchmarkItem],
        *,
        ngram: NgramDetector | None,
        embedding: EmbeddingDetector | None,
        judge: ContaminationJudge | None = None,
        judge_per_item: int = 3,
    ) -> None:
        self.items = list(items)
        self.ngram = ngram
        self.embedding = embedding
        self.judge = judge
        self.judge_per_item = judge_per_item
        self.counters = OperatorCounters("decontamination")

    @classmethod
    def from_config(
        cls,
        config: DecontaminationConfig,
        *,
        encode: Callable[[Sequence[str]], np.ndarray] | None,
        judge: ContaminationJudge | None = None,
        base_dir: Path | None = None,
        judged_elsewhere: bool = False,
    ) -> Decontaminator:
        """Loads the benchmarks and builds the enabled detectors. The embedding detector needs `encode`
        (texts -> unit vectors, e.g. `Embedder.encode`, or a caching wrapper of it). judged_elsewhere:
        these detectors only find matches (in a worker) and another decontaminator decides them with
        the configured judge, so the judge's band of borderline matches is kept without a judge here."""
        if config.judge.enabled and judge is None and not judged_elsewhere:
            raise ValueError("decontamination.judge is enabled but no judge (teacher) was given")
        judge = judge if config.judge.enabled else None
        judged = judge is not None or (config.judge.enabled and judged_elsewhere)
        items = load_benchmarks(config.benchmarks, base_dir=base_dir)
        ngram = (
            NgramDetector(items, n=config.ngram.n, min_shared=config.ngram.min_shared, min_share=config.ngram.min_share)
            if config.ngram.enabled
            else None
        )
        embedding = None
        if config.embedding.enabled:
            if encode is None:
                raise ValueError("the embedding detector is enabled but no embedding model was given")
            embedding = EmbeddingDetector(
                items,
                encode([item.text for item in items]),
                config.embedding,
                floor=config.judge.low if judged else None,
            )
        return cls(items, ngram=ngram, embedding=embedding, judge=judge, judge_per_item=config.judge.per_item)

    @property
    def needs_vectors(self) -> bool:
        return self.embedding is not None

    def ngram_matches(self, texts: Sequence[str]) -> list[list[Match]]:
        if self.ngram is None:
            return [[] for _ in texts]
        return [self.ngram.matches(text) for text in texts]

    def embedding_matches(self, vectors: np.ndarray | None, texts: Sequence[str]) -> list[list[Match]]:
        """texts: those whose numbers are compared with the benchmark item's."""
        if self.embedding is None:
            return [[] for _ in texts]
        if vectors is None or len(vectors) != len(texts):
            raise ValueError(f"the embedding detector needs {len(texts)} vectors")
        return self.embedding.matches(vectors, texts)

    def check(self, texts: Sequence[str], vectors: np.ndarray | None = None) -> list[Decision]:
        """Both detectors over texts (and their unit embeddings), then the judge, then decisions."""
        ngram = self.ngram_matches(texts)
        embedding = self.embedding_matches(vectors, texts)
        return self.decide([a + b for a, b in zip(ngram, embedding, strict=True)], texts.__getitem__)

    def decide(
        self, matches: Sequence[list[Match]], text_of: Callable[[int], str], *, unmatched: int = 0
    ) -> list[Decision]:
        """matches[i]: the detectors' matches of text i. text_of(i) is only called for texts that go
        to the judge, so callers that stream can fetch those few texts late. unmatched: texts the
        caller left out of `matches` because no detector matched them (clean: counted as kept), so
        a large corpus needs decisions only for its few matched rows."""
        self.counters.keep(unmatched)
        decisions = [Decision(evidence=list(found)) for found in matches]
        if self.judge is not None:
            self._judge_borderline(decisions, text_of)
        for decision in decisions:
            condemning = [m for m in decision.evidence if m.contaminated]
            # Borderline matches nobody judged are not evidence of anything.
            decision.evidence = [m for m in decision.evidence if m.contaminated or m.detector == "judge"]
            if condemning:
                decision.contaminated = True
                decision.match = min(condemning, key=lambda m: (_DETECTOR_PRIORITY[m.detector], -m.score))
                self.counters.drop(f"contaminated:{decision.match.detector}")
            else:
                self.counters.keep()
        return decisions

    def _judge_borderline(self, decisions: list[Decision], text_of: Callable[[int], str]) -> None:
        assert self.judge is not None
        asked: list[tuple[int, int]] = []
        pairs: list[tuple[str, str]] = []
        for row, decision in enumerate(decisions):
            if any(m.contaminated for m in decision.evidence):
                continue
            borderline = [k for k, m in enumerate(decision.evidence) if m.detector == "embedding"]
            borderline.sort(key=lambda k: -decision.evidence[k].score)
            for k in borderline[: self.judge_per_item]:
                asked.append((row, k))
                pairs.append((text_of(row), self.items[decision.evidence[k].item_index].text))
        verdicts = self.judge.judge_pairs(pairs)
        for (row, k), verdict in zip(asked, verdicts, strict=True):
            evidence = decisions[row].evidence
            evidence[k] = evidence[k].judged(verdict.label == "same", f"{verdict.label}: {verdict.reply}")

    def audit_rows(
        self, stage: str, item_ids: Sequence[str], decisions: Sequence[Decision], text_of: Callable[[int], str]
    ) -> list[DecontamAudit]:
        """One audit row per piece of evidence."""
        rows = []
        for row, (item_id, decision) in enumerate(zip(item_ids, decisions, strict=True)):
            if not decision.evidence:
                continue
            text = text_of(row)[:AUDIT_TEXT_CHARS]
            for match in decision.evidence:
                rows.append(
                    DecontamAudit(
                        id=audit_id(stage, item_id, match.benchmark, match.item_id, match.detector),
                        stage=stage,
                        item_id=item_id,
                        benchmark=match.benchmark,
                        benchmark_item=match.item_id,
                        detector=match.detector,  # type: ignore[arg-type]
                        score=match.score,
                        contaminated=match.contaminated,
                        evidence=match.evidence[:AUDIT_TEXT_CHARS],
                        item_text=text,
                        benchmark_text=self.items[match.item_index].text[:AUDIT_TEXT_CHARS],
                        judge_prompt=self.judge.prompt_version if match.detector == "judge" and self.judge else None,
                    )
                )
        return rows
