"""Baselines behind the Encoder protocol: ImageNet-label captions and open_clip from scratch."""
import numpy as np
import pytest
from eval_fixtures import make_eval_data

from mmembed.evaluation.baselines.imagenet_labels import ImageNetLabelEncoder
from mmembed.evaluation.baselines.openclip_scratch import CompactTokenizer, ScratchClipConfig, train_openclip_scratch
from mmembed.evaluation.encoders import Encoder, MMEmbedEncoder, UnknownEncoderError, expand_baselines


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_eval_data(tmp_path_factory.mktemp("evaldata"))


def test_imagenet_label_pipeline_captions_and_embeds(data):
    enc = ImageNetLabelEncoder(batch_size=4)
    assert isinstance(enc, Encoder)
    paths = [str(p) for p in sorted((data / "shapes" / "images").glob("*.png"))[:3]]
    captions = enc.captions(paths)
    assert len(captions) == 3 and all(len(c.split("; ")) == 5 for c in captions)
    emb = enc.encode_images(paths)  # (3, 384) e5 passage embeddings of those captions
    assert emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert enc.encode_text(["a red circle"], "query").shape == (1, 384)


def test_image_feature_baseline_scores_image_to_image_and_skips_text_tasks(tmp_path):
    """EfficientNet-Lite0 pooled features: unit rows of 1280; on a colour set with two shades per concept it is
    scored on i2i, and t2i (which needs text) is skipped with the reason."""
    from eval_fixtures import make_color_data

    from mmembed.evaluation.baselines.image_features import ImageFeatureEncoder
    from mmembed.evaluation.data import find_datasets
    from mmembed.evaluation.encoders import EncoderOptions
    from mmembed.evaluation.runner import run_evaluation
    from mmembed.evaluation.tasks import build_tasks

    enc = ImageFeatureEncoder(batch_size=2)
    assert isinstance(enc, Encoder) and enc.modalities == frozenset({"image"})
    (ds,) = find_datasets(make_color_data(tmp_path, per_concept=2))
    paths = sorted({r.image_path.as_posix() for r in ds.records})
    emb = enc.encode_images(paths)
    assert emb.shape == (len(paths), 1280) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.allclose(emb[:1], enc.encode_images(paths[:1]), atol=1e-5)  # batch composition changes nothing
    tasks, _ = build_tasks(["i2i", "t2i"], [ds])
    results = {r.task: r for r in run_evaluation(["image-features"], tasks, EncoderOptions(batch_size=4)).results}
    assert results["i2i"].status == "ok" and 0 <= results["i2i"].metrics["R@1"] <= 1
    assert results["t2i"].status == "skipped: image-features does not embed text"


def test_openclip_scratch_trains_and_replays_exactly(data):
    manifests = [data / "shapes" / "train.jsonl"]
    small = ScratchClipConfig(width=64, layers=1, heads=2, embed_dim=32)  # same code, less compute
    a = train_openclip_scratch(manifests, steps=2, seed=5, tokenizer="bytes", cfg=small)
    b = train_openclip_scratch(manifests, steps=2, seed=5, tokenizer="bytes", cfg=small)
    assert isinstance(a, Encoder) and a.run.steps == 2 and np.isfinite(a.run.final_loss)
    assert a.run.concepts == 8 and a.run.pairs == 48
    texts = ["roter Kreis", "cercle bleu"]
    ta, tb = a.encode_text(texts, "query"), b.encode_text(texts, "query")
    assert ta.shape == (2, 32) and np.array_equal(ta, tb)  # same seed + steps -> same weights
    img = [str(data / "shapes" / "images" / "red_circle.png")]
    assert np.array_equal(a.encode_images(img), b.encode_images(img))
    c = train_openclip_scratch(manifests, steps=2, seed=6, tokenizer="bytes", cfg=small)
    assert not np.array_equal(ta, c.encode_text(texts, "query"))


def test_openclip_scratch_needs_image_training_pairs(data):
    with pytest.raises(ValueError, match="needs image-caption training pairs"):
        train_openclip_scratch([data / "parallel" / "test.jsonl"], steps=1, tokenizer="bytes")


def test_compact_tokenizer_maps_unseen_tokens_to_unk():
    from mmembed.tokenizer import byte_level_tokenizer

    tok = CompactTokenizer(byte_level_tokenizer(), ["ab"], context_length=6)
    ids = tok(["ab", "abz", "abcdefgh"])
    assert ids[0].tolist() == [3, 4, 5, 2, 0, 0]  # <sot> a b <eos> <pad> <pad>
    assert ids[1].tolist() == [3, 4, 5, 1, 2, 0]  # z was never seen -> <unk>
    assert ids[2, -1].item() == 2  # cut to fit, <eos> kept last


def test_baseline_names():
    assert expand_baselines("prompteol,e5") == ["gemma3-270m-prompteol", "gemma3-270m-prompteol-mean", "e5"]
    with pytest.raises(UnknownEncoderError, match="known baselines: e5, imagenet-labels, image-features, prompteol, openclip-scratch"):
        expand_baselines("siglip")


def test_prompt_only_model_is_scored_on_text_only():
    class FakeModel:  # what MMEmbedEncoder reads from a model whose projector is untrained
        image_tower = object()
        config = type("C", (), {"image_trained": False})()

    assert MMEmbedEncoder(FakeModel()).modalities == frozenset({"text"})
