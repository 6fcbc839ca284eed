"""`--engine ray` on a local Ray instance: an actor pool embeds, the driver writes the same collection."""
from __future__ import annotations

import numpy as np
import pytest
from search_fixtures import make_corpus, tiny_model

from mmembed.search.collection import Collection
from mmembed.search.ray_engine import RayOptions


@pytest.fixture(scope="module")
def ray_local():
    import ray  # mmembed[ray]; a missing Ray fails this test rather than skipping it
    import ray.data
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def test_ray_engine_indexes_like_the_local_one(ray_local, tmp_path):
    corpus = make_corpus(tmp_path / "photos", images=4)
    col = Collection(tmp_path / "c.lance", model="tiny-random")
    opts = RayOptions(num_workers=1, batch_size=3)
    report = col.index_paths([corpus.root, corpus.csv], engine="ray", ray_options=opts, progress=False)
    assert report.inserted == 4 + 2 == len(col)
    skipped = {s.path.rsplit("/", 1)[-1] for s in report.skipped}
    assert {"broken.png", "truncated.png", "notes.docx"} <= skipped  # unreadable images come back from the actors
    texts = col.search("x", k=10, kind="text")
    stored = col.vectors([h.document.id for h in texts])
    local = tiny_model().encode_text([h.document.text for h in texts])  # same weights in every process
    np.testing.assert_allclose(stored, local, atol=1e-5)
    images = col.search("x", k=10, kind="image")  # the actors computed the image rows' looks too
    looks = col.appearances([h.document.id for h in images])
    np.testing.assert_allclose(np.stack(looks), tiny_model().encode_appearance([h.document.image for h in images]),
                               atol=1e-5)
    again = col.index_paths([corpus.root, corpus.csv], engine="ray", ray_options=opts, progress=False)
    assert (again.inserted, again.unchanged) == (0, 6) and len(col) == 6
