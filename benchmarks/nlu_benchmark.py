"""Our NLU pipeline (config.yml) against a plain baseline, on one fixed split and
on the hard development set.

    .venv/bin/python benchmarks/nlu_benchmark.py              # ours vs baseline
    .venv/bin/python benchmarks/nlu_benchmark.py --variants   # + pipeline variants

The split is stratified by intent and a pure function of the data and the seed:
within each intent, examples are ranked by SHA-256(seed, text) and the first
20 % are test examples. Rerunning on the same data gives the same split, and
editing the data moves only the examples that were added or removed. Each
split is written to `benchmarks/results/nlu-split-<data fingerprint>.json`.

The hard development set is tests/data/hard_<kind>.yml (messages written apart
from data/nlu: confusable matters, near-miss out of scope, negation, yes/no
answers, dialect/typos/pinyin/speech-to-text/short/long; tests/test_evaluation_sets.py
keeps them out of the training data). Every system is scored on it with the
same model it was scored with on the split, so the two figures are comparable.

Beside accuracy and macro-F1 the benchmark reports where category messages
went (a wrong queue, a fallback question, no ticket) and how often another
message opened a ticket, and replays the FallbackClassifier's threshold on
DIET's rankings to show that trade-off. Intents come from the data and
categories from data/taxonomy.yml, so new intents need no change here.

Systems, all trained on the same 80 % and scored on the same 20 %:
- ours: the pipeline of config.yml, NLU only, trained with
  `rasa.model_training.train_nlu` (no training cache), loaded with
  `Agent.load` and queried with `agent.parse_message`, one message at a time.
  `nlu_fallback` counts as wrong; the top DIET intent ignoring the fallback is
  reported too.
- baseline: jieba words (default dictionary, no normalisation) + TF-IDF +
  logistic regression, scikit-learn defaults.
- variants (`--variants`): config.yml's pipeline with one change each.

Figures go to benchmarks/README.md ("NLU: our pipeline vs baseline", "NLU: hard
development set", "NLU: fallback threshold", "NLU: yes/no in context", and "NLU:
pipeline variants" with `--variants`) and benchmarks/results/.
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
from collections import Counter
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

from bot.training.evaluation import HARD_SET_GLOB

NLU_DATA = PROJECT_ROOT / "data" / "nlu"
CONFIG = PROJECT_ROOT / "config.yml"

FALLBACK_INTENT = "nlu_fallback"
COMMAND = ".venv/bin/python benchmarks/nlu_benchmark.py"
WARM_UP_MESSAGES = 10
# What a mistake costs, in resident questions: a fallback asks the resident once
# more (1); a category message in another category's queue waits until a worker
# notices and transfers it, past part of its SLA, and a non-category message
# that opens a ticket sends a worker after nothing (3 each). The threshold of
# config.yml's FallbackClassifier is chosen by this cost, averaged over the
# split and the hard set.
FALLBACK_COST = 1.0
WRONG_QUEUE_COST = 3.0
SPURIOUS_TICKET_COST = 3.0
# Thresholds whose cost is within this much of the least are equally good on
# these messages (one question per 100 messages); config.yml takes the most
# cautious (highest) of them.
COST_TOLERANCE = 0.01

Pipeline = list[dict[str, Any]]
Ranking = list[tuple[str, float]]


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
class HardSet:
    """The hard development set: examples, each with its kind (file name)."""

    examples: list[Example]
    kinds: list[str]
    fingerprint: str

    @property
    def kind_names(self) -> list[str]:
        return sorted(set(self.kinds))


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
class RouteRates:
    """Where messages went, seen from the queues.

    Of the category messages (the taxonomy's categories): share given another
    category (a ticket in the wrong queue), the fallback (asked again) or a
    non-category intent (no ticket: an out-of-scope reply, a greeting ...). Of
    the other messages: share given a category (a ticket nobody asked for).
    """

    category_messages: int
    wrong_queue: float
    fallback: float
    no_ticket: float
    other_messages: int
    spurious_ticket: float
    # over all messages, for the cost
    fallback_all: float
    cost: float


@dataclass
class Evaluation:
    """One system's answers on one evaluation set."""

    gold: list[str]
    predictions: list[str]
    latencies_ms: list[float]
    # ours only: DIET's ranking without the fallback (intent, confidence), top 3
    rankings: list[Ranking] | None = None
    scores: Scores = field(init=False)
    route: RouteRates = field(init=False)

    def __post_init__(self) -> None:
        self.scores = score(self.gold, self.predictions)
        self.route = route_rates(self.gold, self.predictions)

    @property
    def top_intent_accuracy(self) -> float | None:
        if self.rankings is None:
            return None
        top = [ranking[0][0] for ranking in self.rankings]
        return sum(g == t for g, t in zip(self.gold, top, strict=True)) / len(self.gold)


@dataclass
class SystemResult:
    name: str
    description: str
    train_seconds: float
    # CPU time of this process (all threads) while training: less sensitive than
    # wall time to other jobs on the machine
    train_cpu_seconds: float
    load_average: str
    split: Evaluation
    hard: Evaluation

    @property
    def latencies_ms(self) -> list[float]:
        return self.split.latencies_ms + self.hard.latencies_ms

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


def load_hard_set(pattern: str = HARD_SET_GLOB) -> HardSet:
    """The hard development set, each example with its kind (hard_<kind>.yml)."""
    from bot.training.evaluation import load_holdout

    examples: list[Example] = []
    kinds: list[str] = []
    whole = load_holdout(pattern)
    for file in whole.files:
        kind = Path(file).stem.removeprefix("hard_")
        for text, intent in load_holdout(file).examples:
            examples.append(Example(text, intent))
            kinds.append(kind)
    return HardSet(examples, kinds, whole.hash)


# --- scoring ---------------------------------------------------------------------------


def category_intents() -> frozenset[str]:
    from bot.taxonomy import get_taxonomy

    return frozenset(get_taxonomy().category_intents)


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


def route_rates(gold: Sequence[str], predicted: Sequence[str]) -> RouteRates:
    categories = category_intents()
    pairs = list(zip(gold, predicted, strict=True))
    category = [(g, p) for g, p in pairs if g in categories]
    other = [(g, p) for g, p in pairs if g not in categories]

    def share(items: list[tuple[str, str]], test: Callable[[str, str], bool]) -> float:
        return sum(test(g, p) for g, p in items) / len(items) if items else 0.0

    wrong_queue = share(category, lambda g, p: p in categories and p != g)
    spurious = share(other, lambda g, p: p in categories)
    fallback_all = share(pairs, lambda g, p: p == FALLBACK_INTENT)
    n = len(pairs)
    cost = (
        FALLBACK_COST * fallback_all * n
        + WRONG_QUEUE_COST * wrong_queue * len(category)
        + SPURIOUS_TICKET_COST * spurious * len(other)
    ) / n
    return RouteRates(
        category_messages=len(category),
        wrong_queue=wrong_queue,
        fallback=share(category, lambda g, p: p == FALLBACK_INTENT),
        no_ticket=share(category, lambda g, p: p not in categories and p != FALLBACK_INTENT),
        other_messages=len(other),
        spurious_ticket=spurious,
        fallback_all=fallback_all,
        cost=cost,
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


def run_baseline(split: Split, hard: HardSet) -> SystemResult:
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

    def evaluate(examples: Sequence[Example]) -> Evaluation:
        predictions: list[str] = []
        latencies: list[float] = []
        for example in examples:
            started = time.perf_counter()
            predictions.append(str(model.predict([example.text])[0]))
            latencies.append((time.perf_counter() - started) * 1000)
        return Evaluation([e.intent for e in examples], predictions, latencies)

    return SystemResult(
        name="baseline",
        description="jieba words + TF-IDF + logistic regression (scikit-learn defaults)",
        train_seconds=train_seconds,
        train_cpu_seconds=train_cpu_seconds,
        load_average=load_average(),
        split=evaluate(split.test),
        hard=evaluate(hard.examples),
    )


def read_config(path: Path = CONFIG) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def pipeline_summary(pipeline: Pipeline) -> str:
    """config.yml's pipeline in a line: component names without module paths."""
    names = []
    for component in pipeline:
        name = component["name"].rsplit(".", 1)[-1]
        if component.get("analyzer") in ("char", "char_wb"):
            name += f" ({component['analyzer']} {component.get('min_ngram')}-"
            name += f"{component.get('max_ngram')})"
        names.append(name)
    return ", ".join(names)


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


def diet_ranking(parse: dict[str, Any], length: int = 3) -> Ranking:
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


def with_fallback(rankings: Sequence[Ranking], threshold: float, ambiguity: float) -> list[str]:
    """What FallbackClassifier(threshold, ambiguity_threshold) makes of DIET's rankings."""
    predictions = []
    for ranking in rankings:
        (top, confidence), second = ranking[0], ranking[1][1] if len(ranking) > 1 else 0.0
        fallback = confidence < threshold or confidence - second < ambiguity
        predictions.append(FALLBACK_INTENT if fallback else top)
    return predictions


def run_rasa(
    name: str,
    description: str,
    pipeline: Pipeline,
    split: Split,
    hard: HardSet,
    train_file: Path,
    workdir: Path,
) -> SystemResult:
    print(f"\n=== training {name}: {description}", flush=True)
    started, cpu_started = time.perf_counter(), time.process_time()
    model = train_rasa_nlu(pipeline, train_file, workdir, name)
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = time.process_time() - cpu_started
    load = load_average()
    examples = split.test + hard.examples
    parses, latencies = asyncio.run(parse_all(model, [e.text for e in examples]))

    def evaluation(start: int, end: int) -> Evaluation:
        return Evaluation(
            gold=[e.intent for e in examples[start:end]],
            predictions=[str(p["intent"]["name"]) for p in parses[start:end]],
            latencies_ms=latencies[start:end],
            rankings=[diet_ranking(p) for p in parses[start:end]],
        )

    n = len(split.test)
    result = SystemResult(
        name=name,
        description=description,
        train_seconds=train_seconds,
        train_cpu_seconds=train_cpu_seconds,
        load_average=load,
        split=evaluation(0, n),
        hard=evaluation(n, len(examples)),
    )
    print(
        f"{name}: split macro-F1 {result.split.scores.macro_f1:.3f}, "
        f"hard macro-F1 {result.hard.scores.macro_f1:.3f}, trained in {train_seconds:.0f} s, "
        f"parse p99 {result.p99_ms:.1f} ms",
        flush=True,
    )
    return result


# --- variants --------------------------------------------------------------------------


def _component(pipeline: Pipeline, name: str, **match: Any) -> dict[str, Any]:
    for component in pipeline:
        if component["name"].endswith(name) and all(
            component.get(k) == v for k, v in match.items()
        ):
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


def _without(suffix: str) -> Callable[[Pipeline], Pipeline]:
    def change(pipeline: Pipeline) -> Pipeline:
        return [c for c in pipeline if not c["name"].endswith(suffix)]

    return change


def _words_only(pipeline: Pipeline) -> Pipeline:
    return [c for c in pipeline if c.get("analyzer") not in ("char", "char_wb")]


def _keep_denied_matter(pipeline: Pipeline) -> Pipeline:
    _component(pipeline, "TextNormaliser")["drop_denied_matter"] = False
    return pipeline


def _ensemble(weight: float) -> Callable[[Pipeline], Pipeline]:
    """LinearEnsembleClassifier after DIET with this linear weight (added, or changed)."""

    def change(pipeline: Pipeline) -> Pipeline:
        name = "bot.nlu.linear_ensemble.LinearEnsembleClassifier"
        existing = [c for c in pipeline if c["name"] == name]
        if existing:
            existing[0]["linear_weight"] = weight
            return pipeline
        at = next(i for i, c in enumerate(pipeline) if c["name"] == "DIETClassifier") + 1
        return pipeline[:at] + [{"name": name, "linear_weight": weight}] + pipeline[at:]

    return change


def _without_ensemble(pipeline: Pipeline) -> Pipeline:
    return _without("LinearEnsembleClassifier")(pipeline)


# name -> (description, change to config.yml's pipeline)
VARIANTS: dict[str, tuple[str, Callable[[Pipeline], Pipeline]]] = {
    "no-pinyin": ("without the pinyin featurizer", _without("PinyinFeaturizer")),
    "no-ensemble": ("DIET alone (no linear ensemble)", _without_ensemble),
    "ensemble-0.3": ("linear ensemble, linear weight 0.3", _ensemble(0.3)),
    "ensemble-0.7": ("linear ensemble, linear weight 0.7", _ensemble(0.7)),
    "no-denial-rule": ("TextNormaliser keeps a denied first clause", _keep_denied_matter),
    "no-normaliser": ("without our TextNormaliser", _without("TextNormaliser")),
    "words-only": ("no char n-gram featurizer", _words_only),
    "char_wb-1-4": ("char n-grams inside words only (char_wb), 1-4", _char_ngrams("char_wb", 1, 4)),
    "char-1-4": ("char n-grams across words, 1-4", _char_ngrams("char", 1, 4)),
    "epochs-60": ("DIET epochs 60", _epochs(60)),
    "epochs-150": ("DIET epochs 150", _epochs(150)),
}


def variant_pipeline(name: str) -> Pipeline:
    return VARIANTS[name][1](copy.deepcopy(read_config()["pipeline"]))


# --- report ----------------------------------------------------------------------------

# FallbackClassifier thresholds replayed on DIET's rankings ((0, 0) = no fallback);
# each with config.yml's ambiguity_threshold.
FALLBACK_THRESHOLDS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
CONFUSED_PAIRS_SHOWN = 14
EXAMPLES_PER_PAIR = 2


def num(value: float) -> str:
    return f"{value:.3f}"


def pct(value: float) -> str:
    return f"{value:.1%}"


def fallback_config() -> dict[str, Any]:
    return _component(read_config()["pipeline"], "FallbackClassifier")


def summary_tables(results: Sequence[SystemResult]) -> str:
    quality = markdown_table(
        [
            "system",
            "split accuracy",
            "split macro-F1",
            "split macro-F1, taxonomy intents",
            "hard accuracy",
            "hard macro-F1",
            "hard macro-F1, top intent (no fallback)",
            "training wall / CPU (s)",
            "parse p50 / p99 (ms)",
            "load avg after training",
        ],
        [
            [
                f"**{r.name}**" if r.name == "ours" else r.name,
                num(r.split.scores.accuracy),
                num(r.split.scores.macro_f1),
                num(r.split.scores.taxonomy_macro_f1),
                num(r.hard.scores.accuracy),
                num(r.hard.scores.macro_f1),
                "—"
                if r.hard.rankings is None
                else num(score(r.hard.gold, [x[0][0] for x in r.hard.rankings]).macro_f1),
                f"{r.train_seconds:.1f} / {r.train_cpu_seconds:.1f}",
                f"{r.p50_ms:.1f} / {r.p99_ms:.1f}",
                r.load_average,
            ]
            for r in results
        ],
    )
    routes = markdown_table(
        [
            "system",
            "set",
            "category messages",
            "wrong queue",
            "fallback (asked again)",
            "no ticket",
            "other messages",
            "ticket nobody asked for",
            "cost per message",
        ],
        [
            [
                f"**{r.name}**" if r.name == "ours" else r.name,
                name,
                e.route.category_messages,
                pct(e.route.wrong_queue),
                pct(e.route.fallback),
                pct(e.route.no_ticket),
                e.route.other_messages,
                pct(e.route.spurious_ticket),
                f"{e.route.cost:.3f}",
            ]
            for r in results
            for name, e in (("split", r.split), ("hard", r.hard))
        ],
    )
    return f"{quality}\n\nWhere the messages went:\n\n{routes}"


def per_intent_table(ours: SystemResult, baseline: SystemResult) -> str:
    intents = sorted(set(ours.split.scores.support) | set(ours.hard.scores.support))
    rows = []
    for intent in intents:
        row: list[object] = [intent]
        for evaluation in ("split", "hard"):
            support = getattr(ours, evaluation).scores.support.get(intent, 0)
            row.append(support)
            for result in (ours, baseline):
                f1 = getattr(result, evaluation).scores.per_intent_f1.get(intent)
                row.append("—" if f1 is None else num(f1))
        rows.append(row)
    rows.sort(key=lambda row: (str(row[5]), row[0]))
    return markdown_table(
        [
            "intent",
            "split n",
            "split F1 ours",
            "split F1 baseline",
            "hard n",
            "hard F1 ours",
            "hard F1 baseline",
        ],
        rows,
    )


def kinds_table(hard: HardSet, ours: SystemResult, baseline: SystemResult) -> str:
    rows = []
    for kind in hard.kind_names:
        index = [i for i, k in enumerate(hard.kinds) if k == kind]
        row: list[object] = [kind, len(index)]
        for result in (ours, baseline):
            evaluation = Evaluation(
                [result.hard.gold[i] for i in index],
                [result.hard.predictions[i] for i in index],
                [],
            )
            row += [
                num(evaluation.scores.accuracy),
                num(evaluation.scores.macro_f1),
                pct(evaluation.route.wrong_queue),
                pct(evaluation.route.spurious_ticket),
            ]
        rows.append(row)
    return markdown_table(
        [
            "kind",
            "messages",
            "accuracy ours",
            "macro-F1 ours",
            "wrong queue ours",
            "ticket nobody asked for, ours",
            "accuracy baseline",
            "macro-F1 baseline",
            "wrong queue baseline",
            "ticket nobody asked for, baseline",
        ],
        rows,
    )


def _short(text: str, chars: int = 36) -> str:
    one_line = " ".join(text.split()).replace("|", "/")
    return one_line if len(one_line) <= chars else one_line[:chars] + "…"


def confusions_table(hard: HardSet, result: SystemResult) -> str:
    """The most frequent (gold -> predicted) mistakes of `result` on the hard set,
    fallbacks apart, with example messages."""
    mistakes: dict[tuple[str, str], list[str]] = {}
    for example, predicted in zip(hard.examples, result.hard.predictions, strict=True):
        if predicted not in (example.intent, FALLBACK_INTENT):
            mistakes.setdefault((example.intent, predicted), []).append(example.text)
    ranked = sorted(mistakes.items(), key=lambda item: (-len(item[1]), item[0]))
    rows = [
        [
            gold,
            predicted,
            len(texts),
            "; ".join(f"“{_short(t)}”" for t in texts[:EXAMPLES_PER_PAIR]),
        ]
        for (gold, predicted), texts in ranked[:CONFUSED_PAIRS_SHOWN]
    ]
    return markdown_table(["written as", "understood as", "messages", "for example"], rows)


def fallbacks_line(hard: HardSet, result: SystemResult) -> str:
    counts = Counter(
        e.intent
        for e, p in zip(hard.examples, result.hard.predictions, strict=True)
        if p == FALLBACK_INTENT
    )
    return ", ".join(f"{intent} {n}" for intent, n in counts.most_common()) or "none"


def fallback_sweep_table(result: SystemResult) -> tuple[str, list[float]]:
    """Thresholds replayed on `result`'s rankings; also the thresholds within
    COST_TOLERANCE of the least cost."""
    assert result.split.rankings is not None and result.hard.rankings is not None
    ambiguity = float(fallback_config().get("ambiguity_threshold", 0.0))
    rows = []
    costs_by_threshold: dict[float, float] = {}
    for threshold in FALLBACK_THRESHOLDS:
        row: list[object] = [threshold]
        costs = []
        for evaluation in (result.split, result.hard):
            predicted = with_fallback(evaluation.rankings or [], threshold, ambiguity)
            replay = Evaluation(evaluation.gold, predicted, [])
            costs.append(replay.route.cost)
            row += [
                num(replay.scores.macro_f1),
                pct(replay.route.wrong_queue),
                pct(replay.route.fallback),
                pct(replay.route.spurious_ticket),
                pct(replay.route.fallback_all),
            ]
        cost = sum(costs) / len(costs)
        row.append(f"{cost:.3f}")
        rows.append(row)
        costs_by_threshold[threshold] = cost
    least = min(costs_by_threshold.values())
    band = [t for t, c in costs_by_threshold.items() if c <= least + COST_TOLERANCE + 1e-9]
    for row in rows:
        if row[0] in band:
            row[0] = f"**{row[0]}**"
    table = markdown_table(
        [
            "threshold",
            "split macro-F1",
            "split wrong queue",
            "split category fallback",
            "split ticket nobody asked for",
            "split fallback, all messages",
            "hard macro-F1",
            "hard wrong queue",
            "hard category fallback",
            "hard ticket nobody asked for",
            "hard fallback, all messages",
            "cost per message (mean of both)",
        ],
        rows,
    )
    return table, band


def yes_no_table(hard: HardSet, result: SystemResult) -> str:
    """bot.dialogue.yes_no on the hard set: the yes/no answers under every kind of
    question, and every other hard message as if it were the answer to one."""
    from bot.dialogue.yes_no import Answer, get_lexicon, interpret

    expected = {"affirm": Answer.YES, "deny": Answer.NO}
    confidences = [ranking[0][1] for ranking in result.hard.rankings or []]
    rows = []
    for question in [None, *sorted(get_lexicon().questions)]:
        right = again = flipped = 0
        read_yes = read_no = others = 0
        for example, predicted, confidence in zip(
            hard.examples, result.hard.predictions, confidences, strict=True
        ):
            answer = interpret(example.text, question, predicted, confidence)
            if example.intent in expected:
                right += answer is expected[example.intent]
                again += answer is Answer.UNCLEAR
                flipped += answer not in (expected[example.intent], Answer.UNCLEAR)
            else:
                others += 1
                read_yes += answer is Answer.YES
                read_no += answer is Answer.NO
        answers = right + again + flipped
        rows.append(
            [
                question or "(any: base words only)",
                answers,
                pct(right / answers),
                pct(again / answers),
                pct(flipped / answers),
                others,
                pct(read_yes / others),
                pct(read_no / others),
            ]
        )
    classifier = [
        (e.intent, p)
        for e, p in zip(hard.examples, result.hard.predictions, strict=True)
        if e.intent in expected
    ]
    alone = sum(g == p for g, p in classifier) / len(classifier)
    table = markdown_table(
        [
            "question",
            "yes/no answers",
            "read right",
            "asked again",
            "read the other way",
            "other hard messages",
            "read as yes",
            "read as no",
        ],
        rows,
    )
    return (
        f"{table}\n\nThe stand-alone classifier alone gets {pct(alone)} of the same "
        f"{len(classifier)} answers right (fallback counted wrong)."
    )


def report_main(
    split: Split,
    split_path: Path,
    hard: HardSet,
    ours: SystemResult,
    baseline: SystemResult,
    started: str,
    load_at_start: str,
) -> str:
    paired = {
        name: paired_comparison(
            getattr(ours, name).gold,
            getattr(ours, name).predictions,
            getattr(baseline, name).predictions,
        )
        for name in ("split", "hard")
    }
    verdicts = {
        name: "beats"
        if getattr(ours, name).scores.macro_f1 > getattr(baseline, name).scores.macro_f1
        else "does NOT beat"
        for name in ("split", "hard")
    }
    intents = len(ours.split.scores.support)
    fallback = fallback_config()
    comparisons = "\n".join(
        f"  - {name}: {verdicts[name]} ({num(getattr(ours, name).scores.macro_f1)} vs "
        f"{num(getattr(baseline, name).scores.macro_f1)}); messages only ours gets right: "
        f"{paired[name][0]}, only the baseline: {paired[name][1]} (exact McNemar p = "
        f"{paired[name][2]:.3g})"
        for name in ("split", "hard")
    )
    return f"""\
Latest run: {started}, `{COMMAND}` (`make bench-nlu`).
Machine: {machine_line()}.
Load average (1/5/15 min) at start: {load_at_start}; the 2 cores are shared with other
helpers' jobs, so treat times as upper bounds.

Data: {len(split.train) + len(split.test)} examples of {intents} intents in data/nlu
(fingerprint `{split.data_fingerprint}`), split stratified by intent, seed {split.seed}:
{len(split.train)} training / {len(split.test)} test examples
(`{split_path.relative_to(PROJECT_ROOT)}`, git-ignored; rerun to regenerate it).
Hard development set: {len(hard.examples)} messages in `{HARD_SET_GLOB}` (fingerprint
`{hard.fingerprint}`), never trained on; both systems are the ones trained on the
split's training part.

{summary_tables([ours, baseline])}

- **ours** = config.yml's NLU pipeline: {ours.description}. `nlu_fallback` counts as
  wrong in accuracy and F1.
- Our pipeline on macro-F1:
{comparisons}
- Routing: "wrong queue" = a category message given another category (a ticket in
  the wrong queue); "fallback" = asked again; "no ticket" = given a non-category
  intent; "ticket nobody asked for" = a non-category message given a category.
  Cost per message = {FALLBACK_COST:g} × fallbacks + {WRONG_QUEUE_COST:g} × wrong queues +
  {SPURIOUS_TICKET_COST:g} × tickets nobody asked for, divided by the messages (see
  "NLU: fallback threshold"). config.yml: threshold {fallback.get("threshold")},
  ambiguity_threshold {fallback.get("ambiguity_threshold")}.
- Parse latency of ours: `await agent.parse_message(text)` on the loaded model, warm,
  one message at a time, all {len(ours.latencies_ms)} split and hard messages (the hard set
  has 5–300-character messages). The baseline's is `model.predict([text])`.
- Training time: ours is `train_nlu` without the training cache (graph, DIET,
  packaging the model), the baseline's is `fit`; wall time, and CPU time of the
  process (all threads; 2 cores, so CPU can exceed wall). Full training from scratch
  (NLU + dialogue) and the server's memory: "Training time and server footprint".
- "split macro-F1, taxonomy intents" leaves out the four channel intents ([图片],
  [位置] ...), which have 1–2 split test examples each (one message moves the
  all-intent macro-F1 by up to 0.03) and none in the hard set.
- One split message is {1 / len(split.test):.1%} of accuracy, one hard message
  {1 / len(hard.examples):.1%}: differences of a point or two are noise.

Per-intent F1 (sorted by hard-set F1 of ours):

{per_intent_table(ours, baseline)}
"""


def report_hard(hard: HardSet, ours: SystemResult, baseline: SystemResult, started: str) -> str:
    return f"""\
Latest run: {started}, `{COMMAND}`; systems and figures as in "NLU: our pipeline vs
baseline". Kinds are the files `tests/data/hard_<kind>.yml`.

{kinds_table(hard, ours, baseline)}

Mistakes of ours on the hard set, fallbacks apart (the hand-written analysis is in
"NLU: error analysis"):

{confusions_table(hard, ours)}

Hard messages that fell back (asked again), by intent: {fallbacks_line(hard, ours)}.

The same for the baseline (it never falls back):

{confusions_table(hard, baseline)}
"""


def report_threshold(ours: SystemResult, started: str) -> str:
    table, band = fallback_sweep_table(ours)
    fallback = fallback_config()
    configured = float(fallback.get("threshold", 0.0))
    cautious = max(band)
    verdict = (
        f"config.yml has {configured:g}, the most cautious of them"
        if abs(cautious - configured) < 1e-9
        else f"config.yml has {configured:g}: change it to {cautious:g} or say why not"
    )
    return f"""\
Latest run: {started}, `{COMMAND}`. FallbackClassifier thresholds replayed on the
DIET rankings of ours (split and hard set), ambiguity_threshold
{fallback.get("ambiguity_threshold")} as in config.yml. A wrong queue or a ticket nobody
asked for costs {WRONG_QUEUE_COST:g} (a worker's time and part of the SLA until someone
transfers or closes it), a fallback {FALLBACK_COST:g} (one more message from the resident);
the cost is per message, the mean of the split's and the hard set's.

{table}

Within {COST_TOLERANCE:g} of the least cost (bold): thresholds
{", ".join(f"{t:g}" for t in band)} ({verdict}). "category fallback" is the share of
category messages asked again, "fallback, all messages" the share of all messages.
"""


def report_yes_no(hard: HardSet, ours: SystemResult, started: str) -> str:
    return f"""\
Latest run: {started}, `{COMMAND}`. In a conversation a yes/no question's answer is
read by `bot.dialogue.yes_no.interpret` (the words of data/yes_no.yml, then the
classifier's affirm/deny only when it is sure), not by the classifier alone. Here it
reads every hard message as if it answered each kind of question, with the intent and
confidence ours gave it.

{yes_no_table(hard, ours)}

"Read the other way" is the dangerous mistake (a no taken for a yes submits, withdraws
or closes a ticket); "asked again" costs one more message; an "other" message read as
yes would confirm what the resident did not answer, one read as no drops the question.
"""


def report_variants(results: Sequence[SystemResult], split: Split, started: str) -> str:
    rows = [
        [
            r.name,
            r.description,
            num(r.split.scores.macro_f1),
            num(r.split.scores.taxonomy_macro_f1),
            num(r.hard.scores.macro_f1),
            pct(r.split.route.wrong_queue),
            pct(r.hard.route.wrong_queue),
            pct(r.split.route.fallback_all),
            pct(r.hard.route.fallback_all),
            pct(r.hard.route.spurious_ticket),
            f"{(r.split.route.cost + r.hard.route.cost) / 2:.3f}",
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
            "split macro-F1",
            "split macro-F1, taxonomy intents",
            "hard macro-F1",
            "split wrong queue",
            "hard wrong queue",
            "split fallback",
            "hard fallback",
            "hard ticket nobody asked for",
            "cost",
            "training wall / CPU (s)",
            "parse p50 / p99 (ms)",
            "load avg",
        ],
        rows,
    )
    return f"""\
Latest run: {started}, `{COMMAND} --variants`; machine as above; data fingerprint
`{split.data_fingerprint}`, {len(split.train)} training / {len(split.test)} test examples,
and the hard set. Each row is config.yml's pipeline with one change (fallback settings as
in config.yml); DIET's `random_seed` is fixed. Load average at the end: {load_average()}.

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
        "--skip-main", action="store_true", help="variants only (README main sections untouched)"
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
    hard = load_hard_set()
    print(
        f"{len(split.train)} training / {len(split.test)} test examples, "
        f"{len(hard.examples)} hard messages"
    )

    payload: dict[str, Any] = {
        "started": started,
        "machine": machine_line(),
        "load_average_at_start": load_at_start,
        "split": str(split_path),
        "hard_set": hard.fingerprint,
        "results": [],
    }
    pipeline = copy.deepcopy(read_config()["pipeline"])
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
            baseline = run_baseline(split, hard)
            print(
                f"baseline: split macro-F1 {baseline.split.scores.macro_f1:.3f}, "
                f"hard macro-F1 {baseline.hard.scores.macro_f1:.3f}",
                flush=True,
            )
            ours = run_rasa(
                "ours", pipeline_summary(pipeline), pipeline, split, hard, train_file, workdir
            )
            results = [ours, baseline]
            sections = {
                "NLU: our pipeline vs baseline": report_main(
                    split, split_path, hard, ours, baseline, started, load_at_start
                ),
                "NLU: hard development set": report_hard(hard, ours, baseline, started),
                "NLU: fallback threshold": report_threshold(ours, started),
                "NLU: yes/no in context": report_yes_no(hard, ours, started),
            }
            for title, body in sections.items():
                print(f"\n## {title}\n\n{body}")
                update_readme_section(title, body)

        variants = [
            run_rasa(
                name,
                VARIANTS[name][0],
                variant_pipeline(name),
                split,
                hard,
                train_file,
                workdir,
            )
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
