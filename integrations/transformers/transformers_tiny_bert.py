"""Fine-tune a tiny, randomly initialised BERT on a made-up sentiment task with the Hugging Face
Trainer, traced by ml-debugger. Nothing is downloaded: the vocabulary and the data are built here.

Run it (``python integrations/transformers/transformers_tiny_bert.py``), then evaluate:

    from ml_debugger.evaluator import Evaluator
    Evaluator("tiny-bert-sentiment", "hf-v1").request_evaluation(n_epoch=None).get_summary()

The only ml-debugger line is the callback passed to ``Trainer``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
)

from ml_debugger.integrations.transformers import MLDebuggerCallback

POSITIVE = ["good", "great", "fine", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "poor", "boring", "terrible"]
FILLER = ["the", "movie", "was", "really", "quite", "plot", "acting", "very"]


def build_tokenizer(directory: Path) -> BertTokenizer:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + FILLER
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizer(str(directory / "vocab.txt"))


class Reviews(torch.utils.data.Dataset):
    """Made-up one-line reviews with a label and a review id (``review_id``, not a model input)."""

    def __init__(self, tokenizer: BertTokenizer, size: int, seed: int) -> None:
        rng = random.Random(seed)
        self.rows = []
        for i in range(size):
            label = rng.randint(0, 1)
            words = rng.sample(FILLER, rng.randint(2, 6)) + [rng.choice(POSITIVE if label else NEGATIVE)]
            rng.shuffle(words)
            encoded = tokenizer(" ".join(words))
            self.rows.append({**encoded, "label": label, "review_id": f"r{seed}-{i:05d}"})

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]


def main(
    output_dir: str, epochs: int = 3, model_name: str = "tiny-bert-sentiment", version_name: str = "hf-v1",
    eval_strategy: str = "epoch",
) -> Trainer:
    torch.manual_seed(0)
    tokenizer = build_tokenizer(Path(output_dir))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=32, num_labels=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    args = TrainingArguments(
        output_dir=output_dir, num_train_epochs=epochs, per_device_train_batch_size=16,
        per_device_eval_batch_size=64, learning_rate=3e-3, eval_strategy=eval_strategy, eval_steps=10,
        save_strategy="no", report_to=[], use_cpu=True, logging_strategy="no", disable_tqdm=True,
    )
    trainer = Trainer(
        model=BertForSequenceClassification(config),
        args=args,
        train_dataset=Reviews(tokenizer, 320, seed=1),
        eval_dataset=Reviews(tokenizer, 150, seed=2),
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[MLDebuggerCallback(model_name, version_name, id_column="review_id")],  # <- ml-debugger
    )
    trainer.train()
    return trainer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    with tempfile.TemporaryDirectory() as tmp:
        main(tmp, parser.parse_args().epochs)
