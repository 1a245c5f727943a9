"""Masking personal data keeps the understanding: held-out figures with and without it.

`.venv/bin/python benchmarks/masking_benchmark.py [--model models/x.tar.gz]`

1. How many messages of the held-out set (tests/data/holdout_*.yml), the hard
   development set (tests/data/hard_*.yml) and the training data (data/nlu)
   masking changes: only those holding a phone, ID card, bank card or room number.
2. With a model (default: the newest in models/, `make train`), the held-out and
   hard sets' accuracy and macro-F1 on the messages as written and as masked
   (the review inbox exports masked messages: they must teach as much), and how
   often the two predictions differ.

Rewrites the "Masking personal data" section of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_common import (  # noqa: E402
    PROJECT_ROOT,
    load_average,
    machine_line,
    markdown_table,
    now_text,
    update_readme_section,
)

from bot.privacy.masking import mask  # noqa: E402
from bot.review.export import nlu_examples  # noqa: E402
from bot.training.evaluation import load_holdout, predict, score  # noqa: E402

SETS = (("held-out", "tests/data/holdout_*.yml"), ("hard", "tests/data/hard_*.yml"))


def newest_model() -> Path | None:
    models = sorted((PROJECT_ROOT / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    started = now_text()
    load = load_average()

    counts = []
    for name, pattern in SETS:
        texts = load_holdout(pattern).texts
        counts.append((name, len(texts), sum(mask(t) != t for t in texts)))
    training = [
        t for p in sorted((PROJECT_ROOT / "data/nlu").glob("*.yml")) for _i, t in nlu_examples(p)
    ]
    counts.append(("training data (data/nlu)", len(training), sum(mask(t) != t for t in training)))

    rows = []
    model = args.model or newest_model()
    if model is not None:
        for name, pattern in SETS:
            holdout = load_holdout(pattern)
            masked = [mask(t) for t in holdout.texts]
            t0 = time.monotonic()
            original = predict(model, holdout.texts)
            as_masked = predict(model, masked)
            took = time.monotonic() - t0
            before, after = score(holdout.intents, original), score(holdout.intents, as_masked)
            changed = [i for i, t in enumerate(holdout.texts) if masked[i] != t]
            rows.append(
                (
                    name,
                    holdout.total if hasattr(holdout, "total") else len(holdout.texts),
                    len(changed),
                    f"{before.accuracy:.3f} / {after.accuracy:.3f}",
                    f"{before.macro_f1:.3f} / {after.macro_f1:.3f}",
                    sum(a != b for a, b in zip(original, as_masked, strict=True)),
                    sum(original[i] == holdout.intents[i] for i in changed),
                    sum(as_masked[i] == holdout.intents[i] for i in changed),
                    f"{took:.0f}",
                )
            )

    body = [
        f"Latest run: {started}, `.venv/bin/python benchmarks/masking_benchmark.py`.",
        f"Machine: {machine_line()}. Load average at start: {load}.",
        "",
        "Messages masking changes (bot/privacy/masking.py: phones, ID card numbers with",
        "their check digit, bank card numbers passing Luhn, room numbers):",
        "",
        markdown_table(("set", "messages", "changed by masking"), counts),
        "",
        "Every changed message holds a phone or room number (tests/privacy/test_masking.py",
        "checks each); nothing else is touched.",
        "",
    ]
    if rows:
        body += [
            f"Understanding with and without masking, model `{model.name}`:",
            "",
            markdown_table(
                (
                    "set",
                    "messages",
                    "masked",
                    "accuracy as written / masked",
                    "macro-F1 as written / masked",
                    "predictions that differ",
                    "masked messages right, as written",
                    "masked messages right, masked",
                    "parse time (s)",
                ),
                rows,
            ),
        ]
    else:
        body.append("No model in models/ (`make train`): understanding figures not measured.")
    text = "\n".join(body)
    print(text)
    if not args.no_readme:
        update_readme_section("Masking personal data", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
