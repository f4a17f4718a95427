"""Topic model family: latent Dirichlet allocation by online variational Bayes."""

from streamem.models.protocol import FamilySpec

LDA = FamilySpec(
    name="lda",
    estimator="streamem.models.topics.lda:LatentDirichletAllocation",
    options=(
        "n_components",
        "init_size",
        "n_init",
        "seed",
        "schedule",
        "averaging_start",
        "vocabulary",
        "snapshot_top_words",
        "snapshot_components",
    ),
    snapshot="lda.snapshot.json",
    input_kind="documents",
    scorable_alone=False,
    structural=("n_components", "vocabulary"),
    results="streamem.models.topics.results:LDA_RESULTS",
)
"""Latent Dirichlet allocation's declaration (see :class:`~streamem.models.protocol.FamilySpec`)."""
