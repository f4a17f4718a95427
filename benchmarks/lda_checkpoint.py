"""Time and size of a topic model's checkpoint document (``to_json``), K=10 topics, V=1000 words.

Prints one table: the model's document with its K x V records in the compact encoding, built
directly (``StepwiseEM.state_dict(encode)``), against the same document built the way it was
before (the records first as JSON lists, then replaced), and the size of the list encoding.

    .venv/bin/python benchmarks/lda_checkpoint.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import numpy as np

from streamem import LatentDirichletAllocation
from streamem.models.common.compact import encode_fields
from streamem.synthetic_corpus import TopicCorpus

K, V, REPEATS = 10, 1_000, 20


def _best(run: Callable[[], str]) -> tuple[float, int]:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        text = run()
        times.append(time.perf_counter() - started)
    return min(times), len(text.encode())


def main() -> None:
    rng = np.random.default_rng(0)
    corpus = TopicCorpus.random(K, V, rng)
    X, _ = corpus.sample(4_000, doc_length=80, rng=rng)
    model = LatentDirichletAllocation(K, random_state=0)
    for start in range(0, 4_000, 500):
        model.partial_fit(X[start : start + 500])
    engine = model.engine_

    def lists_first() -> str:  # the records built as lists, then replaced
        document = model.to_dict()
        state = engine.state_dict()
        for name in ("params", "stats", "averaged"):
            record = getattr(engine, name)
            state[name] = None if record is None else encode_fields(record.arrays())
        document["state"]["engine"] = state
        return json.dumps(document, separators=(",", ":"))

    def lists_only() -> str:  # no compact encoding at all
        document = model.to_dict()
        document["state"]["engine"] = engine.state_dict()
        return json.dumps(document, separators=(",", ":"))

    rows = [
        ("to_json (compact, direct)", *_best(model.to_json)),
        ("compact after building lists", *_best(lists_first)),
        ("lists (no compact encoding)", *_best(lists_only)),
    ]
    print(f"K={K}, V={V}; best of {REPEATS} runs (the machine was shared)")
    print(f"{'document':32s} {'seconds':>10s} {'bytes':>12s}")
    for name, seconds, size in rows:
        print(f"{name:32s} {seconds:10.4f} {size:12,d}")


if __name__ == "__main__":
    main()
