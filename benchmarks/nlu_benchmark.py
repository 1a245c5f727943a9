"""Our NLU pipeline (config.yml) against a plain baseline, on one fixed split.

    .venv/bin/python benchmarks/nlu_benchmark.py              # ours vs baseline
    .venv/bin/python benchmarks/nlu_benchmark.py --variants   # + pipeline variants

The split is stratified by intent and a pure function of the data and the seed:
within each intent, examples are ranked by SHA-256(seed, text) and the first
20 % are test examples. Rerunning on the same data gives the same split, and
editing the data moves only the examples that were added or removed. Each
split is written to `benchmarks/results/nlu-split-<data fingerprint>.json`.

Systems, all trained on the same 80 % and scored on the same 20 %:
- ours: the pipeline of config.yml, NLU only, trained with
  `rasa.model_training.train_nlu` (no training cache), loaded with
  `Agent.load` and queried with `agent.parse_message`, one message at a time.
  `nlu_fallback` counts as wrong; the top DIET intent ignoring the fallback is
  reported too.
- baseline: jieba words (default dictionary, no normalisation) + TF-IDF +
  logistic regression, scikit-learn defaults.
- variants (`--variants`): config.yml's pipeline with one change each.

Figures go to benchmarks/README.md ("NLU: our pipeline vs baseline", and
"NLU: pipeline variants" with `--variants`) and benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from bench_common import (
    OFFLINE_ENV,
    PROJECT_ROOT,
    RESULTS_DIR,
    load_average,
    machine_line,
    markdown_table,
    now_text,
    percentile,
    update_readme_section,
)

NLU_DATA = PROJECT_ROOT / "data" / "nlu"
CONFIG = PROJECT_ROOT / "config.yml"
FALLBACK_INTENT = "nlu_fallback"
COMMAND = ".venv/bin/python benchmarks/nlu_benchmark.py"
WARM_UP_MESSAGES = 10

Pipeline = list[dict[str, Any]]


@dataclass(frozen=True)
class Example:
    text: str
    intent: str


@dataclass
class Split:
    seed: int
    test_fraction: float
    data_fingerprint: str
    train: list[Example]
    test: list[Example]

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "test_fraction": self.test_fraction,
            "data_fingerprint": self.data_fingerprint,
            "train": [[e.text, e.intent] for e in self.train],
            "test": [[e.text, e.intent] for e in self.test],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Split:
        return cls(
            seed=data["seed"],
            test_fraction=data["test_fraction"],
            data_fingerprint=data["data_fingerprint"],
            train=[Example(text, intent) for text, intent in data["train"]],
            test=[Example(text, intent) for text, intent in data["test"]],
        )


@dataclass
class Scores:
    accuracy: float
    macro_f1: float
    # macro-F1 over the taxonomy's intents only: the four channel intents
    # ([图片], [位置] ...) have one or two test examples each and would weigh
    # as much as a category with fourteen.
    taxonomy_macro_f1: float
    per_intent_f1: dict[str, float]
    support: dict[str, int]


@dataclass
class SystemResult:
    name: str
    description: str
    predictions: list[str]
    scores: Scores
    train_seconds: float
    # CPU time of this process (all threads) while training: less sensitive than
    # wall time to other jobs on the machine
    train_cpu_seconds: float
    load_average: str
    latencies_ms: list[float] = field(default_factory=list)
    # ours only: DIET's top intent when the fallback is ignored
    top_intent_predictions: list[str] | None = None
    top_intent_accuracy: float | None = None
    fallback_rate: float | None = None
    # ours only: DIET's ranking without the fallback, top 3 (intent, confidence)
    rankings: list[list[tuple[str, float]]] | None = None

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 99)


# --- data and split -------------------------------------------------------------------


def load_examples(nlu_dir: Path = NLU_DATA) -> list[Example]:
    """Intent examples of data/nlu as Rasa reads them (entity markup removed)."""
    from rasa.shared.nlu.training_data.loading import load_data

    training_data = load_data(str(nlu_dir), language="zh")
    examples = {
        Example(message.get("text"), message.get("intent"))
        for message in training_data.intent_examples
    }
    return sorted(examples, key=lambda e: (e.intent, e.text))


def data_fingerprint(examples: Sequence[Example]) -> str:
    digest = hashlib.sha256()
    for example in sorted(examples, key=lambda e: (e.intent, e.text)):
        digest.update(f"{example.intent}\t{example.text}\n".encode())
    return digest.hexdigest()[:16]


def stratified_split(examples: Sequence[Example], seed: int, test_fraction: float) -> Split:
    """Per intent, the `test_fraction` of examples with the lowest seeded hash are test."""
    by_intent: dict[str, list[Example]] = {}
    for example in examples:
        by_intent.setdefault(example.intent, []).append(example)
    train: list[Example] = []
    test: list[Example] = []
    for intent in sorted(by_intent):
        ranked = sorted(
            by_intent[intent],
            key=lambda e: hashlib.sha256(f"{seed}\0{e.text}".encode()).hexdigest(),
        )
        # every intent with at least two examples has one in each part
        n_test = min(max(1, round(len(ranked) * test_fraction)), len(ranked) - 1)
        test.extend(ranked[:n_test])
        train.extend(ranked[n_test:])
    return Split(seed, test_fraction, data_fingerprint(examples), train, test)


def fixed_split(seed: int, test_fraction: float) -> tuple[Split, Path]:
    """The split of the current data, read from results/ when it was written before."""
    examples = load_examples()
    fingerprint = data_fingerprint(examples)
    path = RESULTS_DIR / f"nlu-split-{fingerprint}-seed{seed}-test{test_fraction:g}.json"
    if path.exists():
        split = Split.from_json(json.loads(path.read_text(encoding="utf-8")))
        print(f"Reusing the split {path.relative_to(PROJECT_ROOT)}")
        return split, path
    split = stratified_split(examples, seed, test_fraction)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"Wrote the split {path.relative_to(PROJECT_ROOT)}")
    return split, path


def write_rasa_nlu_file(examples: Sequence[Example], path: Path) -> None:
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    messages = [Message.build(text=e.text, intent=e.intent) for e in examples]
    path.write_text(TrainingData(training_examples=messages).nlu_as_yaml(), encoding="utf-8")


# --- scoring ---------------------------------------------------------------------------


def score(gold: Sequence[str], predicted: Sequence[str]) -> Scores:
    """Accuracy and F1 over the gold intents; any other prediction (fallback) is wrong."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    from bot.taxonomy import get_taxonomy

    labels = sorted(set(gold))
    _, _, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0
    )
    taxonomy = set(get_taxonomy().all_intents)
    taxonomy_f1 = [v for label, v in zip(labels, f1, strict=True) if label in taxonomy]
    return Scores(
        accuracy=float(accuracy_score(gold, predicted)),
        macro_f1=float(f1.mean()),
        taxonomy_macro_f1=float(sum(taxonomy_f1) / len(taxonomy_f1)),
        per_intent_f1={label: float(v) for label, v in zip(labels, f1, strict=True)},
        support={label: int(n) for label, n in zip(labels, support, strict=True)},
    )


def paired_comparison(
    gold: Sequence[str], ours: Sequence[str], baseline: Sequence[str]
) -> tuple[int, int, float]:
    """Messages only ours gets right, only the baseline gets right, exact McNemar p."""
    from scipy.stats import binomtest

    only_ours = sum(o == g != b for g, o, b in zip(gold, ours, baseline, strict=True))
    only_base = sum(b == g != o for g, o, b in zip(gold, ours, baseline, strict=True))
    n = only_ours + only_base
    p_value = binomtest(only_ours, n, 0.5).pvalue if n else 1.0
    return only_ours, only_base, float(p_value)


# --- systems ---------------------------------------------------------------------------


def run_baseline(split: Split) -> SystemResult:
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # A tokenizer of its own: the global one gets our user dictionary once
    # JiebaTokenizer has run in this process.
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()

    def words(text: str) -> list[str]:
        return [word for word in tokenizer.lcut(text) if word.strip()]

    model = make_pipeline(
        TfidfVectorizer(tokenizer=words, token_pattern=None),
        LogisticRegression(max_iter=2000),
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit([e.text for e in split.train], [e.intent for e in split.train])
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started

    predictions: list[str] = []
    latencies: list[float] = []
    for example in split.test:
        started = time.perf_counter()
        predictions.append(str(model.predict([example.text])[0]))
        latencies.append((time.perf_counter() - started) * 1000)
    return SystemResult(
        name="baseline",
        description="jieba words + TF-IDF + logistic regression (scikit-learn defaults)",
        predictions=predictions,
        scores=score([e.intent for e in split.test], predictions),
        train_seconds=train_seconds,
        train_cpu_seconds=train_cpu_seconds,
        load_average=load_average(),
        latencies_ms=latencies,
    )


def read_config(path: Path = CONFIG) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def train_rasa_nlu(pipeline: Pipeline, train_file: Path, workdir: Path, name: str) -> Path:
    from rasa.model_training import train_nlu

    base = read_config()
    config = {key: base[key] for key in ("recipe", "language", "assistant_id") if key in base}
    config["pipeline"] = pipeline
    config_file = workdir / f"{name}-config.yml"
    config_file.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    model = train_nlu(
        config=str(config_file),
        nlu_data=str(train_file),
        output=str(workdir),
        fixed_model_name=name,
    )
    if not model:
        raise RuntimeError(f"training {name} produced no model")
    return Path(model)


async def parse_all(model: Path, texts: Sequence[str]) -> tuple[list[dict[str, Any]], list[float]]:
    """Parse each text with the loaded model, one at a time, after a warm-up."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    for text in texts[:WARM_UP_MESSAGES]:
        await agent.parse_message(text)
    results: list[dict[str, Any]] = []
    latencies: list[float] = []
    for text in texts:
        started = time.perf_counter()
        results.append(await agent.parse_message(text))
        latencies.append((time.perf_counter() - started) * 1000)
    return results, latencies


def diet_ranking(parse: dict[str, Any], length: int = 3) -> list[tuple[str, float]]:
    """DIET's intent ranking, without the fallback's entry."""
    ranking = [
        (str(ranked["name"]), float(ranked["confidence"]))
        for ranked in parse.get("intent_ranking") or []
        if ranked.get("name") != FALLBACK_INTENT
    ]
    if not ranking:
        intent = parse.get("intent") or {}
        ranking = [(str(intent.get("name")), float(intent.get("confidence") or 0.0))]
    return ranking[:length]


def with_fallback(
    rankings: Sequence[Sequence[tuple[str, float]]], threshold: float, ambiguity: float
) -> list[str]:
    """What FallbackClassifier(threshold, ambiguity_threshold) makes of DIET's rankings."""
    predictions = []
    for ranking in rankings:
        (top, confidence), second = ranking[0], ranking[1][1] if len(ranking) > 1 else 0.0
        fallback = confidence < threshold or confidence - second < ambiguity
        predictions.append(FALLBACK_INTENT if fallback else top)
    return predictions


def run_rasa(
    name: str, description: str, pipeline: Pipeline, split: Split, train_file: Path, workdir: Path
) -> SystemResult:
    print(f"\n=== training {name}: {description}", flush=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    model = train_rasa_nlu(pipeline, train_file, workdir, name)
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started
    load = load_average()
    texts = [e.text for e in split.test]
    parses, latencies = asyncio.run(parse_all(model, texts))
    gold = [e.intent for e in split.test]
    predictions = [str(p["intent"]["name"]) for p in parses]
    rankings = [diet_ranking(p) for p in parses]
    top = [ranking[0][0] for ranking in rankings]
    result = SystemResult(
        name=name,
        description=description,
        predictions=predictions,
        scores=score(gold, predictions),
        train_seconds=train_seconds,
        train_cpu_seconds=train_cpu_seconds,
        load_average=load,
        latencies_ms=latencies,
        top_intent_predictions=top,
        top_intent_accuracy=score(gold, top).accuracy,
        fallback_rate=sum(p == FALLBACK_INTENT for p in predictions) / len(predictions),
        rankings=rankings,
    )
    print(
        f"{name}: accuracy {result.scores.accuracy:.3f}, macro-F1 {result.scores.macro_f1:.3f}, "
        f"trained in {train_seconds:.0f} s, parse p50 {result.p50_ms:.1f} ms",
        flush=True,
    )
    return result


# --- variants --------------------------------------------------------------------------


def _component(pipeline: Pipeline, name: str, **match: Any) -> dict[str, Any]:
    for component in pipeline:
        if component["name"] == name and all(component.get(k) == v for k, v in match.items()):
            return component
    raise KeyError(f"no {name} {match} in the pipeline")


def _char_ngrams(analyzer: str, low: int, high: int) -> Callable[[Pipeline], Pipeline]:
    def change(pipeline: Pipeline) -> Pipeline:
        char = next(
            c
            for c in pipeline
            if c["name"] == "CountVectorsFeaturizer" and c.get("analyzer") in ("char", "char_wb")
        )
        char.update(analyzer=analyzer, min_ngram=low, max_ngram=high)
        return pipeline

    return change


def _epochs(epochs: int) -> Callable[[Pipeline], Pipeline]:
    def change(pipeline: Pipeline) -> Pipeline:
        _component(pipeline, "DIETClassifier")["epochs"] = epochs
        return pipeline

    return change


def _words_only(pipeline: Pipeline) -> Pipeline:
    return [c for c in pipeline if c.get("analyzer") not in ("char", "char_wb")]


def _without_normaliser(pipeline: Pipeline) -> Pipeline:
    return [c for c in pipeline if not c["name"].endswith("TextNormaliser")]


# name -> (description, change to config.yml's pipeline)
VARIANTS: dict[str, tuple[str, Callable[[Pipeline], Pipeline]]] = {
    "char_wb-1-4": ("char n-grams inside words only (char_wb), 1-4", _char_ngrams("char_wb", 1, 4)),
    "char-1-2": ("char n-grams across words, 1-2", _char_ngrams("char", 1, 2)),
    "char-1-4": ("char n-grams across words, 1-4", _char_ngrams("char", 1, 4)),
    "words-only": ("no char n-gram featurizer", _words_only),
    "epochs-40": ("DIET epochs 40", _epochs(40)),
    "epochs-100": ("DIET epochs 100", _epochs(100)),
    "no-normaliser": ("without our TextNormaliser", _without_normaliser),
}


def variant_pipeline(name: str) -> Pipeline:
    return VARIANTS[name][1](copy.deepcopy(read_config()["pipeline"]))


# --- report ----------------------------------------------------------------------------

# (threshold, ambiguity_threshold) settings of FallbackClassifier replayed on
# DIET's rankings of the test messages; (0, 0) is "no fallback".
FALLBACK_SWEEP = [(0.0, 0.0), (0.3, 0.0), (0.3, 0.05), (0.3, 0.1), (0.4, 0.0), (0.4, 0.05),
                  (0.4, 0.1), (0.5, 0.05), (0.6, 0.05)]  # fmt: skip


def num(value: float) -> str:
    return f"{value:.3f}"


def wrong_intent_rate(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of messages given another intent (not the fallback): a wrong ticket category."""
    wrong = sum(p != g and p != FALLBACK_INTENT for g, p in zip(gold, predicted, strict=True))
    return wrong / len(gold)


def fallback_rate(predicted: Sequence[str]) -> float:
    return sum(p == FALLBACK_INTENT for p in predicted) / len(predicted)


def summary_table(results: Sequence[SystemResult], gold: Sequence[str]) -> str:
    rows = []
    for r in results:
        top = "—" if r.top_intent_accuracy is None else num(r.top_intent_accuracy)
        rows.append(
            [
                f"**{r.name}**" if r.name == "ours" else r.name,
                num(r.scores.accuracy),
                num(r.scores.macro_f1),
                num(r.scores.taxonomy_macro_f1),
                top,
                f"{fallback_rate(r.predictions):.1%}",
                f"{wrong_intent_rate(gold, r.predictions):.1%}",
                f"{r.train_seconds:.1f} / {r.train_cpu_seconds:.1f}",
                f"{r.p50_ms:.1f} / {r.p99_ms:.1f}",
                r.load_average,
            ]
        )
    return markdown_table(
        [
            "system",
            "accuracy",
            "macro-F1",
            "macro-F1, 24 taxonomy intents",
            "accuracy, top DIET intent (fallback ignored)",
            "fallback",
            "wrong intent",
            "training wall / CPU (s)",
            "parse p50 / p99 (ms)",
            "load avg after training",
        ],
        rows,
    )


def per_intent_table(results: Sequence[SystemResult]) -> str:
    first = results[0].scores
    rows = []
    for intent in sorted(first.support, key=lambda i: (-first.support[i], i)):
        rows.append(
            [intent, first.support[intent], *(num(r.scores.per_intent_f1[intent]) for r in results)]
        )
    return markdown_table(["intent", "test examples", *(f"F1 {r.name}" for r in results)], rows)


def fallback_sweep_table(result: SystemResult, gold: Sequence[str]) -> str:
    assert result.rankings is not None
    rows = []
    for threshold, ambiguity in FALLBACK_SWEEP:
        predicted = with_fallback(result.rankings, threshold, ambiguity)
        scores = score(gold, predicted)
        accepted = [(g, p) for g, p in zip(gold, predicted, strict=True) if p != FALLBACK_INTENT]
        precision = sum(g == p for g, p in accepted) / len(accepted) if accepted else 0.0
        rows.append(
            [
                threshold,
                ambiguity,
                num(scores.accuracy),
                num(scores.macro_f1),
                num(scores.taxonomy_macro_f1),
                f"{fallback_rate(predicted):.1%}",
                f"{wrong_intent_rate(gold, predicted):.1%}",
                num(precision),
            ]
        )
    return markdown_table(
        [
            "threshold",
            "ambiguity_threshold",
            "accuracy",
            "macro-F1",
            "macro-F1, taxonomy",
            "fallback",
            "wrong intent",
            "accuracy of accepted",
        ],
        rows,
    )


def report_main(
    split: Split,
    split_path: Path,
    ours: SystemResult,
    baseline: SystemResult,
    started: str,
    load_at_start: str,
) -> str:
    gold = [e.intent for e in split.test]
    only_ours, only_base, p_value = paired_comparison(gold, ours.predictions, baseline.predictions)
    verdict = "beats" if ours.scores.macro_f1 > baseline.scores.macro_f1 else "does NOT beat"
    intents = len(ours.scores.support)
    fallback = read_config()["pipeline"][-1]
    return f"""\
Latest run: {started}, `{COMMAND}` (`make bench-nlu`).
Machine: {machine_line()}.
Load average (1/5/15 min) at start: {load_at_start}; other people were training models
on the same 2 cores, so treat times as upper bounds.

Data: {len(split.train) + len(split.test)} examples of {intents} intents in data/nlu
(fingerprint `{split.data_fingerprint}`), split stratified by intent, seed {split.seed}:
{len(split.train)} training / {len(split.test)} test examples
(`{split_path.relative_to(PROJECT_ROOT)}`, git-ignored; rerun to regenerate it).

{summary_table([ours, baseline], gold)}

- **ours** = config.yml's NLU pipeline: {ours.description}. `nlu_fallback` counts as
  wrong in accuracy and F1; "accuracy, top DIET intent" scores DIET's first intent
  instead. "wrong intent" = messages given another intent than the fallback (for a
  category that is a ticket in the wrong queue; a fallback asks the resident again).
- Parse latency of ours: `await agent.parse_message(text)` on the loaded model, warm,
  one message at a time, all {len(split.test)} test messages. The baseline's is
  `model.predict([text])`.
- Training time: ours is `train_nlu` without the training cache (graph, DIET,
  packaging the model), the baseline's is `fit`; wall time, and CPU time of the
  process (all threads; 2 cores, so CPU can exceed wall).
- "macro-F1, 24 taxonomy intents" leaves out the four channel intents ([图片],
  [位置] ...), which have 1–2 test examples each.
- Our pipeline **{verdict}** the baseline on macro-F1
  ({num(ours.scores.macro_f1)} vs {num(baseline.scores.macro_f1)}; taxonomy intents
  {num(ours.scores.taxonomy_macro_f1)} vs {num(baseline.scores.taxonomy_macro_f1)}).
  Test messages only ours gets right: {only_ours}; only the baseline: {only_base}
  (exact McNemar p = {p_value:.3g}). One test message is {1 / len(split.test):.1%} of
  accuracy: differences of a point or two on this split are noise.

FallbackClassifier settings replayed on the same DIET predictions (config.yml has
threshold {fallback.get("threshold")}, ambiguity_threshold
{fallback.get("ambiguity_threshold")}):

{fallback_sweep_table(ours, gold)}

Per-intent F1 (test set):

{per_intent_table([ours, baseline])}
"""


def report_variants(results: Sequence[SystemResult], split: Split, started: str) -> str:
    gold = [e.intent for e in split.test]
    rows = [
        [
            r.name,
            r.description,
            num(r.scores.accuracy),
            num(r.scores.macro_f1),
            num(r.scores.taxonomy_macro_f1),
            "—" if r.top_intent_accuracy is None else num(r.top_intent_accuracy),
            f"{fallback_rate(r.predictions):.1%}",
            f"{wrong_intent_rate(gold, r.predictions):.1%}",
            f"{r.train_seconds:.1f} / {r.train_cpu_seconds:.1f}",
            f"{r.p50_ms:.1f} / {r.p99_ms:.1f}",
            r.load_average,
        ]
        for r in results
    ]
    table = markdown_table(
        [
            "pipeline",
            "change to config.yml",
            "accuracy",
            "macro-F1",
            "macro-F1, taxonomy",
            "accuracy, top DIET intent",
            "fallback",
            "wrong intent",
            "training wall / CPU (s)",
            "parse p50 / p99 (ms)",
            "load avg",
        ],
        rows,
    )
    return f"""\
Latest run: {started}, `{COMMAND} --variants`; machine as above; data fingerprint
`{split.data_fingerprint}`, {len(split.train)} training / {len(split.test)} test examples.
Each row is config.yml's pipeline with one change (fallback settings as in config.yml);
DIET's `random_seed` is fixed. Load average at the end: {load_average()}.

{table}
"""


def write_results(payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"nlu-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


# --- main ------------------------------------------------------------------------------


def quiet_rasa() -> None:
    """Warnings and errors only: Rasa logs every parse at debug level otherwise."""
    os.environ["LOG_LEVEL"] = "WARNING"
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument(
        "--variants",
        nargs="?",
        const="all",
        help=f"also train pipeline variants: 'all' or a comma list of {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--skip-main", action="store_true", help="variants only (README main section untouched)"
    )
    args = parser.parse_args(argv)

    os.chdir(PROJECT_ROOT)  # config.yml's paths (data/dict) are relative to the project
    os.environ.update(OFFLINE_ENV)
    quiet_rasa()
    variant_names = (
        []
        if not args.variants
        else list(VARIANTS)
        if args.variants == "all"
        else [v.strip() for v in args.variants.split(",") if v.strip()]
    )
    unknown = set(variant_names) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")

    started = now_text()
    load_at_start = load_average()
    split, split_path = fixed_split(args.seed, args.test_fraction)
    print(f"{len(split.train)} training / {len(split.test)} test examples")

    payload: dict[str, Any] = {
        "started": started,
        "machine": machine_line(),
        "load_average_at_start": load_at_start,
        "split": str(split_path),
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="nlu-bench-") as tmp:
        workdir = Path(tmp)
        # A fresh, empty training cache: every training is from scratch and
        # the project's .rasa/cache is left alone.
        os.environ["RASA_CACHE_DIRECTORY"] = str(workdir / "cache")
        os.environ["RASA_MAX_CACHE_SIZE"] = "0"
        train_file = workdir / "train.yml"
        write_rasa_nlu_file(split.train, train_file)

        results: list[SystemResult] = []
        if not args.skip_main:
            baseline = run_baseline(split)
            print(
                f"baseline: accuracy {baseline.scores.accuracy:.3f}, "
                f"macro-F1 {baseline.scores.macro_f1:.3f}",
                flush=True,
            )
            ours = run_rasa(
                "ours",
                "TextNormaliser, jieba + user dictionary, word + char n-gram counts, "
                "DIET, FallbackClassifier",
                copy.deepcopy(read_config()["pipeline"]),
                split,
                train_file,
                workdir,
            )
            results = [ours, baseline]
            body = report_main(split, split_path, ours, baseline, started, load_at_start)
            print("\n" + body)
            update_readme_section("NLU: our pipeline vs baseline", body)

        variants = [
            run_rasa(name, VARIANTS[name][0], variant_pipeline(name), split, train_file, workdir)
            for name in variant_names
        ]
        if variants:
            body = report_variants(results[:1] + variants, split, started)
            print("\n" + body)
            update_readme_section("NLU: pipeline variants", body)

    payload["results"] = [
        {**asdict(r), "p50_ms": r.p50_ms, "p99_ms": r.p99_ms} for r in results + variants
    ]
    print(f"Raw results: {write_results(payload).relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
