"""How often one pass of streaming LDA recovers every generating topic, without and with the
warm-up (``init_size`` documents, ``n_init`` batch-refined starts, the best bound kept).

Corpora: the LDA generative model, K=10 topics over V=1,000 words drawn from Dirichlet(0.05),
document-topic prior 0.1, 50,000 documents of 80 tokens (the daemon's integration test corpus),
one corpus per seed; each is learned in one pass of mini-batches of 500 documents with
several model seeds. A run "recovers" the topics when the mean best-match cosine between the
generating and the learned topics (matched one to one) is above 0.95: a merged pair of topics
leaves it near 0.87.

    python benchmarks/lda_warmup.py [--corpora 4] [--starts 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from streamem import LatentDirichletAllocation
from streamem.synthetic_corpus import TopicCorpus, matched_topic_cosine

K, V, DOCUMENTS, LENGTH, BATCH = 10, 1_000, 50_000, 80, 500
SETTINGS = {
    "no warm-up (default)": {},
    "init_size 2000, n_init 3": {"init_size": 2_000, "n_init": 3},
    "init_size 2000, n_init 5": {"init_size": 2_000, "n_init": 5},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=int, default=4, help="corpus seeds")
    parser.add_argument("--starts", type=int, default=4, help="model seeds per corpus")
    args = parser.parse_args()
    corpora = []
    for seed in range(args.corpora):
        rng = np.random.default_rng(seed)
        topics = TopicCorpus.random(K, V, rng)
        corpora.append((topics, topics.sample(DOCUMENTS, LENGTH, rng)[0]))
    print(f"{'setting':<28} {'recovered':>10} {'mean cosine':>12} {'worst':>7} {'s/run':>7}")
    for name, options in SETTINGS.items():
        cosines, seconds = [], 0.0
        for topics, X in corpora:
            for start in range(args.starts):
                model = LatentDirichletAllocation(K, random_state=start, **options)
                began = time.perf_counter()
                for begin in range(0, DOCUMENTS, BATCH):
                    model.partial_fit(X[begin : begin + BATCH])
                seconds += time.perf_counter() - began
                cosines.append(matched_topic_cosine(model.components_, topics.topics))
        runs = len(cosines)
        recovered = sum(cosine > 0.95 for cosine in cosines)
        print(
            f"{name:<28} {f'{recovered}/{runs}':>10} {np.mean(cosines):>12.4f} "
            f"{min(cosines):>7.3f} {seconds / runs:>7.1f}"
        )


if __name__ == "__main__":
    main()
