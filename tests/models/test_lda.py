"""LatentDirichletAllocation: the stream, the corpus-size rule, serialisation, the protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from streamem import HalfLife, LatentDirichletAllocation, ValidationError
from streamem.models.protocol import StreamingModel, StreamingOptions
from streamem.models.registry import model_class, model_from_dict
from streamem.models.topics.family import topic_word_bound
from streamem.synthetic_corpus import TopicCorpus, matched_topic_cosine


@pytest.fixture
def corpus(rng: np.random.Generator) -> tuple[TopicCorpus, sp.csr_matrix]:
    topics = TopicCorpus.random(n_topics=4, n_words=60, rng=rng)
    X, _ = topics.sample(1200, doc_length=40, rng=rng)
    return topics, X


def stream(model: LatentDirichletAllocation, X: sp.csr_matrix, size: int) -> None:
    for start in range(0, X.shape[0], size):
        model.partial_fit(X[start : start + size])


def test_one_pass_recovers_separated_topics(rng: np.random.Generator) -> None:
    """Topics on their own words (random topics with overlapping words can leave one pass of
    12 updates in a local optimum that merges two topics, for scikit-learn's online
    updates as for these: the benchmark measures recovery on random topics)."""
    blocks = np.kron(np.eye(4), np.ones(15)) * rng.uniform(0.5, 1.5, (4, 60)) + 0.01
    topics = TopicCorpus(blocks / blocks.sum(axis=1, keepdims=True))
    X, _ = topics.sample(1200, doc_length=40, rng=rng)
    model = LatentDirichletAllocation(4, random_state=0)
    stream(model, X, 100)
    assert model.n_seen_ == 1200
    assert model.n_batch_iter_ == 12
    assert matched_topic_cosine(model.components_, topics.topics) > 0.95
    mixtures = model.transform(X[:10])
    assert mixtures.shape == (10, 4)
    np.testing.assert_allclose(mixtures.sum(axis=1), 1.0)


def test_corpus_size_is_the_effective_number_of_documents_behind_the_statistics(
    corpus: tuple[TopicCorpus, sp.csr_matrix],
) -> None:
    _, X = corpus
    model = LatentDirichletAllocation(4, random_state=0)
    weights: list[float] = []  # the weight of each document in the running average
    for start in range(0, 1200, 100):
        step = model.next_step_size(100)
        weights = [w * (1.0 - step) for w in weights] + [step / 100] * 100
        model.partial_fit(X[start : start + 100])
    kish = 1.0 / float(np.sum(np.square(weights)))
    assert model.effective_documents_ == pytest.approx(kish, rel=1e-12)
    assert 100 < model.effective_documents_ < 1200
    average = model.engine_.stats.word_topic  # per-document running statistics
    np.testing.assert_allclose(
        model.components_, model.topic_word_prior_ + model.effective_documents_ * average
    )
    # A running mean (steps m / (n + m)) gives every document the same weight: D = n.
    model = LatentDirichletAllocation(4, learning_decay=1.0, learning_offset=0.0)
    stream(model, X, 100)
    assert model.effective_documents_ == pytest.approx(1200.0)


def test_fit_then_stream_continues_with_the_documents_behind_the_fit(
    corpus: tuple[TopicCorpus, sp.csr_matrix],
) -> None:
    _, X = corpus
    model = LatentDirichletAllocation(4, max_iter=5, random_state=0).fit(X[:1000])
    assert model.effective_documents_ == pytest.approx(1000.0)
    assert model.next_step_size(200) == pytest.approx(200 / 1200)
    model.partial_fit(X[1000:])
    assert model.n_seen_ == 1200
    assert model.effective_documents_ == pytest.approx(1200.0)


def test_online_fit_makes_passes_of_mini_batches(corpus: tuple[TopicCorpus, sp.csr_matrix]) -> None:
    _, X = corpus
    model = LatentDirichletAllocation(
        4, learning_method="online", batch_size=200, max_iter=2, random_state=0
    ).fit(X)
    assert model.n_batch_iter_ == 12
    assert model.n_seen_ == 2400
    by_hand = LatentDirichletAllocation(4, random_state=0)
    for _ in range(2):
        stream(by_hand, X, 200)
    assert np.array_equal(model.components_, by_hand.components_)


def test_dense_and_sparse_input_learn_the_same(corpus: tuple[TopicCorpus, sp.csr_matrix]) -> None:
    _, X = corpus
    sparse, dense = (LatentDirichletAllocation(4, random_state=1) for _ in range(2))
    stream(sparse, X[:400], 100)
    stream(dense, X[:400].toarray(), 100)
    np.testing.assert_allclose(sparse.components_, dense.components_, rtol=1e-12)
    assert sparse.score(X[400:500]) == pytest.approx(dense.score(X[400:500].toarray()))


def test_statistics_add_across_splits_and_ignore_document_order(
    corpus: tuple[TopicCorpus, sp.csr_matrix], rng: np.random.Generator
) -> None:
    _, X = corpus
    model = LatentDirichletAllocation(4, random_state=0)
    stream(model, X[:300], 100)
    family, params = model._lda_family, model.engine_.params
    whole = family.expected_statistics(params, X[300:500], None)
    first = family.expected_statistics(params, X[300:420], None)
    second = family.expected_statistics(params, X[420:500], None)
    np.testing.assert_allclose(
        first.stats.word_topic + second.stats.word_topic, whole.stats.word_topic, rtol=1e-10
    )
    assert first.log_likelihood + second.log_likelihood == pytest.approx(whole.log_likelihood)
    assert whole.n_units == 200
    order = rng.permutation(200)
    shuffled = family.infer(params, X[300:500][order], word_topic=True)
    unshuffled = family.infer(params, X[300:500], word_topic=True)
    np.testing.assert_allclose(shuffled.doc_topic, unshuffled.doc_topic[order], rtol=1e-10)
    np.testing.assert_allclose(shuffled.word_topic, unshuffled.word_topic, rtol=1e-10)


def test_empty_documents_count_and_keep_the_prior_mixture(
    corpus: tuple[TopicCorpus, sp.csr_matrix],
) -> None:
    _, X = corpus
    batch = sp.vstack([X[:50], sp.csr_matrix((2, X.shape[1]))]).tocsr()
    model = LatentDirichletAllocation(4, random_state=0).partial_fit(batch)
    assert model.n_seen_ == 52
    np.testing.assert_allclose(model.transform(batch[-2:]), 0.25)
    bounds = model.log_density(model.documents_batch([{}, {0: 2.0}]))
    assert bounds[0] == pytest.approx(0.0, abs=1e-12)  # no word: log p = 0, the bound is tight
    assert bounds[1] < 0.0


def test_json_round_trip_is_exact_compact_and_continues_identically(
    corpus: tuple[TopicCorpus, sp.csr_matrix],
) -> None:
    _, X = corpus
    model = LatentDirichletAllocation(
        4, random_state=0, schedule=HalfLife(500.0), averaging_start=3, vocabulary=60
    )
    stream(model, X[:600], 100)
    text = model.to_json()
    packed = json.loads(text)["state"]["engine"]["params"]["components"]
    assert packed["encoding"] == "zlib-base64-float64le"
    restored = LatentDirichletAllocation.from_json(text)
    assert np.array_equal(restored.components_, model.components_)
    assert restored.get_params()["schedule"] == HalfLife(500.0)
    as_lists = json.dumps(model.components_.tolist())
    assert len(json.dumps(packed)) < 0.7 * len(as_lists)
    for copy in (model, restored):
        stream(copy, X[600:800], 100)
    assert np.array_equal(restored.components_, model.components_)
    assert restored.effective_documents_ == model.effective_documents_
    assert restored.status == model.status
    unfitted = LatentDirichletAllocation.from_json(LatentDirichletAllocation(3).to_json())
    assert unfitted.get_params() == LatentDirichletAllocation(3).get_params()


def test_given_starting_topics_round_trip(corpus: tuple[TopicCorpus, sp.csr_matrix]) -> None:
    topics, X = corpus
    start = topics.topics * 100.0 + 0.5
    model = LatentDirichletAllocation(4, components_init=start, max_iter=2).fit(X[:200])
    restored = LatentDirichletAllocation.from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.array_equal(np.asarray(restored.components_init), start)
    assert np.array_equal(restored.components_, model.components_)


def test_parameters_document_carries_top_words_not_the_matrix(
    corpus: tuple[TopicCorpus, sp.csr_matrix],
) -> None:
    topics, X = corpus
    words = [f"w{j}" for j in range(60)]
    model = LatentDirichletAllocation(4, random_state=0, vocabulary=words, snapshot_top_words=5)
    stream(model, X, 200)
    document = model.parameters_document()
    assert "components" not in document
    assert document["n_features"] == 60
    assert len(document["topics"]) == 4
    assert sum(document["topic_weights"]) == pytest.approx(1.0)
    for topic in document["topics"]:
        assert topic["words"] == [words[j] for j in topic["columns"]]
        assert topic["weights"] == sorted(topic["weights"], reverse=True)
    # the heaviest word of each generating topic is among the published top words
    published = {word for topic in document["topics"] for word in topic["words"]}
    assert {words[int(j)] for j in topics.topics.argmax(axis=1)} <= published
    json.dumps(document, allow_nan=False)
    model.set_params(snapshot_components=True)
    assert np.array_equal(np.asarray(model.parameters_document()["components"]), model.components_)


def test_the_model_protocol(corpus: tuple[TopicCorpus, sp.csr_matrix]) -> None:
    _, X = corpus
    assert model_class("lda") is LatentDirichletAllocation
    model = LatentDirichletAllocation(4, random_state=0)
    assert model.status.initialized is False
    assert model.next_step_size(10) == 1.0
    model.learn(X[:100])  # learn: the protocol's door, validating on a first call
    batch = model.documents_batch([{0: 1.0, 5: 2.0}, {59: 3}])
    model.learn(batch)
    assert isinstance(model, StreamingModel)
    status = model.status
    assert (status.initialized, status.n_seen, status.n_updates) == (True, 102, 2)
    assert sum(status.weights) == pytest.approx(1.0)
    assert status.record is not None
    assert status.record.n_points == 2
    assert model.log_density(batch).shape == (2,)
    model.restart_schedule(0.5)
    assert model.next_step_size(100) == pytest.approx(0.5)
    restored = model_from_dict(model.to_dict())
    assert isinstance(restored, LatentDirichletAllocation)
    assert restored.status == status


def test_documents_batch_with_a_fixed_or_hashed_vocabulary() -> None:
    fixed = LatentDirichletAllocation(2, vocabulary=("rain", "sun", "wind"))
    batch = fixed.documents_batch([{"sun": 2, "rain": 1.5, "hail": 4}, {}])
    assert batch.toarray().tolist() == [[1.5, 2.0, 0.0], [0.0, 0.0, 0.0]]
    hashed = LatentDirichletAllocation(2, vocabulary=2**8)
    ours = hashed.documents_batch([{"rain": 2, "sun": 1}, {"wind": 1}])
    theirs = HashingVectorizer(n_features=2**8, alternate_sign=False, norm=None).transform(
        ["rain rain sun", "wind"]
    )
    assert (ours != theirs).nnz == 0
    with pytest.raises(ValidationError, match="count of token 'sun'"):
        fixed.documents_batch([{"sun": -1}])
    with pytest.raises(ValidationError, match="count of token 'sun'"):
        fixed.documents_batch([{"sun": "two"}])
    with pytest.raises(ValidationError, match="number of columns"):
        LatentDirichletAllocation(2).documents_batch([{0: 1}])


def test_warm_up_buffers_then_starts_from_the_best_refined_start(
    corpus: tuple[TopicCorpus, sp.csr_matrix],
) -> None:
    _, X = corpus
    model = LatentDirichletAllocation(4, random_state=0, init_size=300, n_init=2, init_em_iter=5)
    stream(model, X[:200], 100)
    assert (model.status.n_warmup, model.status.n_seen) == (200, 0)
    assert not model.status.initialized
    halfway = LatentDirichletAllocation.from_json(model.to_json())  # the buffer is state
    assert halfway.status == model.status
    for copy in (model, halfway):
        stream(copy, X[200:300], 100)
    assert (model.status.n_warmup, model.n_seen_, model.n_batch_iter_) == (0, 300, 1)
    assert np.array_equal(halfway.components_, model.components_)
    # the start kept is the better-bound of the two refined starts
    family, rng = model._family(), np.random.default_rng(0)
    candidates = []
    for _ in range(2):
        refined = model._batch_iterations(family.initial_params(X[:300], rng), X[:300], 5).params
        bound = family.infer(refined, X[:300], False).bound.sum()
        candidates.append((bound + topic_word_bound(refined.components, 0.25), refined))
    start = max(candidates, key=lambda candidate: candidate[0])[1]
    assert not np.array_equal(candidates[0][1].components, candidates[1][1].components)
    expected = LatentDirichletAllocation(4, components_init=start.components).partial_fit(X[:300])
    np.testing.assert_allclose(model.components_, expected.components_, rtol=1e-12)


def test_warm_up_of_one_unrefined_start_is_the_plain_first_update(
    corpus: tuple[TopicCorpus, sp.csr_matrix],
) -> None:
    _, X = corpus
    plain = LatentDirichletAllocation(4, random_state=3)
    warmed = LatentDirichletAllocation(4, random_state=3, n_init=1, init_em_iter=0)
    for model in (plain, warmed):
        stream(model, X[:300], 100)
    assert np.array_equal(warmed.components_, plain.components_)


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"n_components": 0}, "n_components"),
        ({"learning_method": "stochastic"}, "learning_method"),
        ({"learning_decay": 0.3}, "learning_decay"),
        ({"doc_topic_prior": -1.0}, "doc_topic_prior"),
        ({"max_doc_update_iter": 0}, "max_doc_update_iter"),
        ({"components_init": np.ones((3, 5))}, r"components_init must have shape \(2, 6\)"),
        ({"components_init": np.zeros((2, 6))}, "components_init must hold"),
        ({"vocabulary": ["a", "b"]}, "vocabulary has 2 columns"),
        ({"init_size": 0}, "init_size must be an integer >= 1 or None"),
        ({"n_init": 1.5}, "n_init must be an integer >= 1 or None"),
        ({"init_em_iter": -1}, "init_em_iter must be an integer >= 0"),
    ],
)
def test_bad_parameters_name_the_parameter(parameters: dict[str, object], message: str) -> None:
    X = np.ones((3, 6))
    with pytest.raises(ValidationError, match=message):
        LatentDirichletAllocation(**{"n_components": 2, **parameters}).fit(X)  # type: ignore[arg-type]


def test_bad_input_is_refused() -> None:
    model = LatentDirichletAllocation(2).fit(np.ones((3, 6)))
    with pytest.raises(ValidationError, match="Negative values"):
        model.partial_fit(-np.ones((2, 6)))
    with pytest.raises(ValidationError, match="6 features"):
        model.partial_fit(np.ones((2, 5)))
    with pytest.raises(ValidationError):
        model.transform(np.full((1, 6), np.nan))
    with pytest.raises(ValueError, match="not fitted"):
        LatentDirichletAllocation(2).transform(np.ones((1, 6)))


def test_protocol_options_and_rows(corpus: tuple[TopicCorpus, sp.csr_matrix]) -> None:
    _, X = corpus
    model = LatentDirichletAllocation.from_options(
        StreamingOptions(n_components=3, seed=5, schedule=HalfLife(300.0), averaging_start=4)
    )
    assert (model.n_components, model.random_state, model.averaging_start) == (3, 5, 4)
    assert model.sequential is False
    batch = model.batch_from_rows(X[:20].toarray())
    assert (batch != X[:20]).nnz == 0
    model.learn(batch)
    assert model.status.n_seen == 20
    with pytest.raises(ValidationError, match="no sequence keys"):
        model.batch_from_rows(X[:2].toarray(), keys=("a", "b"))
    with pytest.raises(ValidationError, match="finite counts >= 0"):
        model.batch_from_rows(np.array([[1.0, np.nan]]))


def test_a_damaged_document_is_refused_with_the_field_named(
    corpus: tuple[TopicCorpus, sp.csr_matrix],
) -> None:
    _, X = corpus
    document = LatentDirichletAllocation(4, random_state=0).partial_fit(X[:50]).to_dict()
    document["state"]["n_features_in"] = 59
    with pytest.raises(ValidationError, match=r"state.engine.params.components must be"):
        LatentDirichletAllocation.from_dict(document)
    document["state"]["n_features_in"] = 60
    document["state"]["engine"]["stats"]["word_topic"]["data"] = "not base64!"
    with pytest.raises(ValidationError, match="data is not valid"):
        LatentDirichletAllocation.from_dict(document)
    with pytest.raises(ValidationError, match="hyperparameters"):
        LatentDirichletAllocation.from_dict(
            {**document, "hyperparameters": {"n_topics": 4}, "state": None}
        )
    with pytest.raises(ValidationError, match="format_version 2 is not supported"):
        LatentDirichletAllocation.from_dict({**document, "format_version": 2})
