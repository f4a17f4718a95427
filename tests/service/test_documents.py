"""The text decoder of topic-model documents, and a learner + snapshot of them."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from streamem.models.common.vocabulary import FixedVocabulary, HashingVocabulary
from streamem.service.codecs import RecordRejected, RejectReason
from streamem.service.config import DriftSettings, ModelSettings, VocabularySettings
from streamem.service.documents import DocumentDecoder
from streamem.service.learner import Learner
from streamem.service.snapshot import (
    build_snapshot,
    encode_snapshot,
    snapshot_fields,
    snapshot_schema,
)
from streamem.synthetic_corpus import TopicCorpus

WORDS = FixedVocabulary(["rain", "sun", "wind", "été"])


def _reason(decoder: DocumentDecoder, value: bytes | None) -> RejectReason:
    with pytest.raises(RecordRejected) as caught:
        decoder(value)
    return caught.value.reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, RejectReason.EMPTY),
        (b"", RejectReason.EMPTY),
        (b"  a , ! \n", RejectReason.EMPTY),  # no token of two word characters
        (b"rain " * 5, RejectReason.TOO_LARGE),
        (b"rain \xff\xfe sun", RejectReason.MALFORMED),
        (b"snow and hail", RejectReason.NO_KNOWN_WORD),
    ],
)
def test_bad_documents_are_rejected_with_their_reason(
    value: bytes | None, reason: RejectReason
) -> None:
    assert _reason(DocumentDecoder(WORDS, max_bytes=24), value) is reason


def test_tokens_are_lower_cased_words_of_two_characters_and_counted() -> None:
    decoder = DocumentDecoder(WORDS, max_bytes=1000)
    assert decoder("RAIN, rain; a sun-wind ÉTÉ été x".encode()) == {
        0: 2.0,
        1: 1.0,
        2: 1.0,
        3: 2.0,
    }


def test_hashed_columns_are_scikit_learns() -> None:
    from sklearn.feature_extraction.text import HashingVectorizer

    text = "The rain in Spain falls mainly on the plain, the RAIN!"
    ours = DocumentDecoder(HashingVocabulary(2**12), max_bytes=1000)(text.encode())
    theirs = HashingVectorizer(n_features=2**12, alternate_sign=False, norm=None)
    row = theirs.transform([text])
    assert ours == dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))


def test_a_batch_of_documents_is_learned_and_published_as_topics() -> None:
    rng = np.random.default_rng(7)
    print("seed 7")
    corpus = TopicCorpus.random(n_topics=3, n_words=40, rng=rng)
    X, _ = corpus.sample(600, doc_length=60, rng=rng)
    words = [f"w{j}" for j in range(40)]
    decoder = DocumentDecoder(FixedVocabulary(words), max_bytes=10_000)
    texts = [
        " ".join(w for j, n in enumerate(row) for w in [words[j]] * int(n)).encode()
        for row in X.toarray()
    ]
    settings = ModelSettings(
        family="lda", n_components=3, vocabulary=VocabularySettings(words=words)
    )
    learner = Learner(settings, DriftSettings(enabled=False), ["text"])
    for start in range(0, 600, 100):
        batch = decoder.batch([decoder(text) for text in texts[start : start + 100]])
        assert learner.learn(batch).n_points == 100
    assert learner.status.n_seen == 600
    snapshot = build_snapshot(learner, name="topics", version=1, offsets={}, drift=False)
    decoded = json.loads(encode_snapshot(snapshot))
    jsonschema.Draft202012Validator(snapshot_schema()).validate(decoded)
    assert list(decoded) == list(snapshot_fields("lda"))
    assert decoded["n_features"] == 40
    assert len(decoded["topics"]) == 3
    assert all(len(topic["words"]) == 10 for topic in decoded["topics"])
    assert all(word.startswith("w") for topic in decoded["topics"] for word in topic["words"])
    assert "components" not in decoded
