"""The training data and domain against the taxonomy contract."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import yaml

from bot.nlu.normalise import normalise
from bot.taxonomy import get_taxonomy, load_taxonomy

from .conftest import SHARED_SPEC

ROOT = Path(__file__).resolve().parents[1]
CHANNEL_INTENTS = {"share_location", "share_photo", "voice_unrecognised", "unsupported_message"}
# Intents of features beyond the taxonomy contract (reported to the spec owner):
# consultations (issue 11) and a resident's own data (issue 15).
LOCAL_INTENTS = {"answer_consultation", "ask_guide", "ask_my_data", "delete_my_data"}


def load_examples() -> dict[str, list[str]]:
    examples: dict[str, list[str]] = {}
    for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        for block in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
            if "intent" not in block:
                continue
            lines = [
                line[2:].strip() for line in block["examples"].splitlines() if line.startswith("- ")
            ]
            examples.setdefault(block["intent"], []).extend(lines)
    return examples


EXAMPLES = load_examples()


# Fields our copy adds to the contract's categories (contract changes for the spec
# owner); every other field must be the contract's, unchanged.
ADDED_CATEGORY_FIELDS = {"handled_by", "public", "incident_window_hours"}


def test_taxonomy_copy_keeps_the_shared_contract_and_only_adds_fields():
    shared = SHARED_SPEC / "taxonomy.yml"
    if not shared.exists():
        pytest.skip(f"{shared} is not beside this checkout")
    contract = yaml.safe_load(shared.read_text(encoding="utf-8"))
    ours = yaml.safe_load((ROOT / "data" / "taxonomy.yml").read_text(encoding="utf-8"))
    assert set(ours) == set(contract)
    assert ours["dialogue"] == contract["dialogue"]
    assert [c["code"] for c in ours["categories"]] == [c["code"] for c in contract["categories"]]
    for mine, theirs in zip(ours["categories"], contract["categories"], strict=True):
        assert {k: mine.get(k) for k in theirs} == theirs, mine["code"]
        assert set(mine) - set(theirs) <= ADDED_CATEGORY_FIELDS, mine["code"]
    # and both read the same, but for what the added fields say
    assert load_taxonomy(shared).category_intents == get_taxonomy().category_intents


def test_every_taxonomy_intent_is_in_the_domain_and_nothing_unknown():
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    intents = set(domain["intents"])
    taxonomy = set(get_taxonomy().all_intents)
    assert taxonomy <= intents
    assert intents - taxonomy == CHANNEL_INTENTS | LOCAL_INTENTS


@pytest.mark.parametrize("intent", sorted(LOCAL_INTENTS))
def test_local_intents_have_at_least_15_examples(intent):
    assert len(EXAMPLES.get(intent, [])) >= 15


@pytest.mark.parametrize("intent", get_taxonomy().category_intents)
def test_category_intents_have_at_least_40_examples(intent):
    assert len(EXAMPLES.get(intent, [])) >= 40


@pytest.mark.parametrize("intent", get_taxonomy().dialogue_intents)
def test_conversation_intents_have_at_least_15_examples(intent):
    assert len(EXAMPLES.get(intent, [])) >= 15


def _shape(text: str) -> str:
    """Text with numbers and punctuation folded: 3号楼 and 5号楼 look alike."""
    text = normalise(text, max_chars=None)
    text = re.sub(r"[0-9零一二三四五六七八九十百两]+", "#", text)
    return re.sub(r"[\s\W_]+", "", text)


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)} or {text}


def test_no_example_appears_twice():
    seen: dict[str, str] = {}
    clashes = []
    for intent, texts in EXAMPLES.items():
        for text in texts:
            key = normalise(text, max_chars=None)
            if key in seen:
                clashes.append((text, seen[key], intent))
            seen[key] = intent
    assert not clashes


@pytest.mark.parametrize("intent", sorted(EXAMPLES))
def test_no_near_duplicates_within_an_intent(intent):
    shapes = [(t, _shape(t), _bigrams(_shape(t))) for t in EXAMPLES[intent]]
    near = []
    for (a, sa, ba), (b, sb, bb) in itertools.combinations(shapes, 2):
        if sa == sb and len(sa) > 2:
            near.append((a, b))
        elif min(len(sa), len(sb)) >= 8 and len(ba & bb) / len(ba | bb) >= 0.85:
            near.append((a, b))
    assert not near, f"near-duplicates in {intent}: {near[:5]}"


def test_user_dictionary_has_the_domain_words():
    words = {
        line.split()[0]
        for line in (ROOT / "data" / "dict" / "userdict.txt")
        .read_text(encoding="utf-8")
        .splitlines()
        if line.strip()
    }
    for word in ("僵尸车", "错时停车", "暖气片", "低保", "回迁房", "网格员", "和平新村", "裕园"):
        assert word in words
