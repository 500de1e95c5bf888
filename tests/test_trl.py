"""TRL's own SFTTrainer trains on the dataset exactly as `load_dataset(DIR, "reasoning")` returns it:
prompt-completion rows, so the loss covers the assistant turn (think block included) and not the
prompt. The student is the bundled 135M model, on the CPU."""

from __future__ import annotations

import math

import datasets
import pytest
import torch

from distillery.operators.teachers.bundled import prepare_bundled_model

trl = pytest.importorskip("trl", reason="trl is in the dev extra: pip install -e '.[dev]'")

TRAIN_STEPS = 2


def test_sft_trainer_trains_on_the_completion_with_its_think_block(demo_like_run, tmp_path):
    train = datasets.load_dataset(
        str(demo_like_run / "dataset"), "reasoning", split="train", cache_dir=str(tmp_path / "cache")
    )
    student = prepare_bundled_model("smollm2-135m")
    torch.manual_seed(0)
    config = trl.SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=TRAIN_STEPS,
        per_device_train_batch_size=1,
        # fp32: bf16 matmuls are slow on CPUs without bf16 units; checkpointing would redo the forward pass
        model_init_kwargs={"dtype": torch.float32},
        gradient_checkpointing=False,
        learning_rate=1e-5,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        max_length=256,
        dataloader_num_workers=0,
    )
    trainer = trl.SFTTrainer(model=str(student), args=config, train_dataset=train)
    tokenizer = trainer.processing_class
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])
    for i, row in enumerate(train):
        trained = batch["labels"][i][batch["labels"][i] != -100]
        text = tokenizer.decode(trained)
        # the whole assistant turn and nothing of the prompt
        assert row["completion"][0]["content"] in text
        assert text.startswith("<think>\n") and row["reasoning"] in text
        assert row["messages"][0]["content"] not in text and "SmolLM" not in text
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == TRAIN_STEPS and all(math.isfinite(loss) for loss in losses)
