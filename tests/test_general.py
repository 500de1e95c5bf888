"""The general (non-reasoning) split: the think/no-think policy, and a run on local Ray that writes
both splits (scripted teacher and judge; the demo job runs the same path with the real CPU teacher)."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import job_yaml, write_jsonl
from scripted_teacher import scripted_factory

from distillery.operators.select.general_policy import GeneralPolicy
from distillery.operators.teachers.chat_format import ChatFormat
from distillery.pipeline.runner import run_job
from distillery.schemas.general_config import THINK_INSTRUCTION, GeneralConfig
from distillery.schemas.job import JobFileError, load_job
from distillery.schemas.records import Generation, Prompt, prompt_id


def prompt(problem: str, domain: str = "general") -> Prompt:
    return Prompt(id=prompt_id(problem, "s"), source="s", source_row=0, domain=domain, problem=problem)


@pytest.mark.parametrize(
    "text", ["Hello!", "hi there", "Thanks so much!!", "Good morning :)", "你好", "How are you?", "bonjour", "ok."]
)
def test_greetings_and_chit_chat_are_trivial(text):
    assert GeneralPolicy(GeneralConfig()).answers_directly(prompt(text))


@pytest.mark.parametrize(
    "text",
    [
        "Hello, can you explain how vaccines work?",
        "Write a haiku about the sea.",
        "Thanks! Now translate 'cat' to French.",
        "Explain recursion.",
    ],
)
def test_real_requests_get_a_chain_of_thought(text):
    assert not GeneralPolicy(GeneralConfig()).answers_directly(prompt(text))


def test_short_prompts_can_be_made_trivial_and_other_domains_never_are():
    policy = GeneralPolicy(GeneralConfig(max_trivial_words=2))
    assert policy.answers_directly(prompt("Explain recursion."))
    assert not policy.answers_directly(prompt("Compute 2+3."))  # digits: something to work out
    assert not policy.answers_directly(prompt("Hello!", domain="math"))


def test_the_chat_put_to_the_teacher():
    policy = GeneralPolicy(GeneralConfig(direct_instruction="Answer in one sentence."))
    base = ChatFormat(prompt_template="{problem}\nPut your final answer within \\boxed{}.", system_prompt="Be kind.")
    think = policy.chat(base, prompt("Write a haiku about the sea.")).messages(prompt("Write a haiku about the sea."))
    assert think == [
        {"role": "system", "content": f"Be kind.\n\n{THINK_INSTRUCTION}"},
        {"role": "user", "content": "Write a haiku about the sea."},
    ]
    direct = policy.chat(ChatFormat(), prompt("Hello!")).messages(prompt("Hello!"))
    assert direct[0] == {"role": "system", "content": "Answer in one sentence."}
    keep_template = GeneralPolicy(GeneralConfig(prompt_template=None, think_instruction=None))
    assert keep_template.chat(base, prompt("x")) == base


def test_row_kind_follows_what_the_row_holds():
    policy = GeneralPolicy(GeneralConfig())

    def generated(reasoning: str) -> Generation:
        return Generation(id="g", prompt_id="p", round=0, index=0, source="s", domain="general", teacher="t",
                          model="m", sampling="{}", seed=0, text="", reasoning=reasoning, answer="a",
                          think_well_formed=bool(reasoning), prompt_tokens=1, completion_tokens=1, finish_reason="stop")

    assert policy.row_kind(prompt("Write a poem."), generated("Short plan.")) == "general"
    assert policy.row_kind(prompt("Write a poem."), generated("")) == "no_cot"  # asked to think, did not
    assert policy.row_kind(prompt("Hello!"), generated("The user greets me.")) == "no_cot"


ROWS = [
    {"id": "m1", "problem": "What is 2 + 3?", "answer": "5", "domain": "math"},
    {"id": "g1", "problem": "Hello!", "domain": "general"},
    {"id": "g2", "problem": "Write a haiku about the sea.", "domain": "general"},
    {"id": "g3", "problem": "Tell me a joke about cats.", "domain": "general"},
]
# Judge turns quote the request, so their keys come first (the scripted teacher takes the first match).
SCRIPT = {
    "Request:\nHello!": [["SCORE: 9"]],
    "Request:\nWrite a haiku": [["SCORE: 8"]],
    "Request:\nTell me a joke": [["SCORE: 2"]],
    "2 + 3": [["<think>\nadd\n</think>\n\n\\boxed{5}"]],
    "Hello!": [["Hi! How can I help you today?"]],
    "haiku": [["<think>\nFive, seven, five syllables.\n</think>\n\nWaves fold into foam"]],
    "joke": [["<think>\nKeep it short.\n</think>\n\nCats do not tell jokes."]],
}


def test_both_splits_are_written_with_the_same_schema(tmp_path, local_ray):
    write_jsonl(tmp_path / "prompts.jsonl", ROWS)
    text = job_yaml("prompts.jsonl", n=2, max_rounds=1, keep=2).replace(
        "    fields: {problem: problem, answer: answer, domain: domain, id: id}\n",
        "    fields: {problem: problem, answer: answer, domain: domain, id: id}\n    require_answer: false\n",
    )
    (tmp_path / "job.yaml").write_text(text + "judge: {teacher: t}\n")
    result = run_job(tmp_path / "job.yaml", str(tmp_path / "run"), teacher_factory=scripted_factory(SCRIPT))
    dataset = result.run_dir / "dataset"
    # each prompt's samples are the same text: stage 5 keeps one of them (a selected one)
    assert result.report["dataset"]["rows"] == {"reasoning": 1, "general": 2}
    twins = duckdb.sql(
        f"SELECT reason, count(*) FROM '{result.run_dir}/response_filter/dropped.parquet' GROUP BY ALL"
    ).fetchall()
    assert twins == [("near_duplicate_in_prompt", 9)]  # 4 identical samples per accepted prompt
    general_schema = pq.read_schema(next((dataset / "general").glob("*.parquet")))
    assert general_schema.equals(pq.read_schema(next((dataset / "reasoning").glob("*.parquet"))))
    rows = duckdb.sql(
        f"SELECT problem, kind, reasoning, messages[1].content, messages[2].content, verdicts[1].verifier "
        f"FROM '{dataset}/general/*.parquet' ORDER BY problem, sample_id"
    ).fetchall()
    assert [r[:3] for r in rows] == [
        ("Hello!", "no_cot", ""),
        ("Write a haiku about the sea.", "general", "Five, seven, five syllables."),
    ]
    greeting, haiku = rows
    # the user turn is the bare request: no \boxed{} template, no instruction to think
    assert greeting[3] == "Hello!" and greeting[4] == "<think>\n\n</think>\n\nHi! How can I help you today?"
    assert haiku[4] == "<think>\nFive, seven, five syllables.\n</think>\n\nWaves fold into foam"
    assert all(r[5].startswith("llm_judge:scripted-model@score-1.") for r in rows)
    # the joke scored 2 of 10: rejected by the judge, kept in samples/ with its reason
    reasons = duckdb.sql(
        f"SELECT DISTINCT rejection_reason FROM '{result.run_dir}/samples/*.parquet' WHERE domain = 'general' "
        "AND NOT accepted"
    ).fetchall()
    assert [r[0].split(";")[0] for r in reasons] == ["incorrect:llm_judge:scripted-model@" +
                                                      rows[0][5].split("@")[1] + ": score 2, needs 7"]
    assert "general" in (dataset / "dataset_info.json").read_text()


def test_judge_section_is_validated(tmp_path):
    write_jsonl(tmp_path / "prompts.jsonl", ROWS)
    path = tmp_path / "job.yaml"
    path.write_text(job_yaml("prompts.jsonl") + "judge: {teacher: tt}\n")
    with pytest.raises(JobFileError, match=r"judge\.teacher: unknown teacher 'tt'; did you mean 't'"):
        load_job(path)
    second = """  other:
    backend: vllm
    model: bundled:smollm2-135m
"""
    routed = second + "generation:\n  domain_teachers: {general: other}\n"
    text = job_yaml("prompts.jsonl").replace("generation:\n", routed)
    path.write_text(text + "judge: {teacher: t}\n")
    with pytest.raises(JobFileError, match="is a vLLM engine, so only its own replicas can run it"):
        load_job(path)
    remote = """  other:
    backend: openai
    model: judge-model
    base_url: http://127.0.0.1:8000/v1
"""
    text = job_yaml("prompts.jsonl").replace("generation:\n", remote + "generation:\n")
    path.write_text(text + "judge: {teacher: other, domains: [science], second_opinion: confirm}\n")
    job = load_job(path)
    assert job.judge is not None and job.judge.second_opinion == "confirm"
