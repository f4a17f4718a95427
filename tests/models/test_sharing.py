"""Shares of shards merge into one model of any family, whose fitted attributes follow the
merged parameters (what a daemon's replicas publish)."""

from __future__ import annotations

import numpy as np
import pytest

from streamem.models.protocol import StreamingOptions
from streamem.models.registry import family_names, model_class, model_from_dict
from streamem.models.sharing import merged, share_of, start_like
from tests.models.family_rows import rows_for

OPTIONS = StreamingOptions(n_components=2, covariance_type="diag", init_size=50, n_init=2, seed=3)


@pytest.mark.parametrize("family", family_names())
def test_a_merged_model_publishes_the_parameters_of_its_merged_statistics(
    family: str, rng: np.random.Generator
) -> None:
    rows = rows_for(family, rng, 400)
    first = model_class(family).from_options(OPTIONS)
    first.learn(first.batch_from_rows(rows[:100]))
    second = start_like(first)
    second.learn(second.batch_from_rows(rows[100:250]))
    first.learn(first.batch_from_rows(rows[250:]))
    before = first.parameters_document()

    model = merged(start_like(first), [share_of(first), share_of(second)])

    assert model.status.n_seen == first.status.n_seen + second.status.n_seen == 400
    published = model.parameters_document()
    assert published != before  # the other shard's statistics moved the parameters
    # the fitted attributes are those a model loaded from the merged state derives
    loaded = model_from_dict(model.to_dict())
    assert published == loaded.parameters_document()
    fitted = _fitted_arrays(model)
    assert fitted  # every family has array attributes
    for name, value in fitted.items():
        np.testing.assert_allclose(value, getattr(loaded, name), rtol=1e-12, err_msg=name)


def _fitted_arrays(model: object) -> dict[str, np.ndarray]:
    """The model's fitted attributes (``name_``) that are arrays."""
    return {
        name: value
        for name, value in vars(model).items()
        if name.endswith("_") and not name.startswith("_") and isinstance(value, np.ndarray)
    }
