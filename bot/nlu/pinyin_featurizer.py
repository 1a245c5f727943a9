"""Rasa NLU component: counts of pinyin syllables and syllable pairs.

A CountVectorsFeaturizer that reads each token as its toneless pinyin
(bot.nlu.pinyin) instead of its characters, so a homophone typo (暖器, 低宝,
回签房) or typed pinyin ("nuanqi bu re") has the features of the word meant.
Word analyzer over syllables: a token's own features are the syllables and
syllable pairs inside it; the message's are those of all its syllables in a row,
so 回/签/房 split by jieba still share "hui qian" and "qian fang" with 回迁房.
Only the message text is featurised (the word featurizer already covers
intent labels).
"""

from __future__ import annotations

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import (
    CountVectorsFeaturizer,
)
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.pinyin import token_pinyin


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class PinyinFeaturizer(CountVectorsFeaturizer):
    """Sparse features of the sound of the message: toneless pinyin n-grams."""

    @staticmethod
    def _attributes_for(analyzer: str) -> list[str]:
        return [TEXT]

    def _get_message_tokens_by_attribute(self, message: Message, attribute: str) -> list[str]:
        tokens = super()._get_message_tokens_by_attribute(message, attribute)
        if attribute != TEXT:
            return tokens
        return [token_pinyin(token) for token in tokens]
