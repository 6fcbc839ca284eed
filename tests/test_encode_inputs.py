"""Inputs the encode API used to take wrongly or reject with a raw error: float ranges, 16-bit and premultiplied
images, invalid Unicode, numpy integers for dim / batch_size, a bare fused tuple, mixed numpy / torch similarity."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmembed.encoding import EncodeInputError
from mmembed.images import ImageInputError, open_image


def _picture() -> np.ndarray:
    """(32, 24, 3) uint8 with structure (a gradient and a block), so a binarized copy would differ."""
    y, x = np.mgrid[0:32, 0:24]
    img = np.stack([x * 10, y * 7, (x + y) * 4], axis=-1).astype(np.uint8)
    img[8:16, 4:12] = (250, 20, 90)
    return img


def test_float_pixels_in_0_255_are_read_as_such_not_clipped_to_black_and_white():
    img = _picture()
    same = np.asarray(open_image(img))
    np.testing.assert_array_equal(np.asarray(open_image(img.astype(np.float32))), same)  # 0..255 floats
    np.testing.assert_array_equal(np.asarray(open_image(img.astype(np.float64) / 255.0)), same)  # 0..1 floats
    gray = Image.fromarray(img[..., 0])
    np.testing.assert_array_equal(np.asarray(open_image(gray.convert("F"))), np.asarray(open_image(gray)))  # PIL "F"


@pytest.mark.parametrize("values", [300.0, -2.0])
def test_float_pixels_outside_both_ranges_are_refused_by_index(values):
    with pytest.raises(ImageInputError, match=r"image #3 \(ndarray\): float pixel values span .* expected \[0, 1\] or \[0, 255\]"):
        open_image(np.full((4, 4), values), 3)
    with pytest.raises(ImageInputError, match=r"image #1 \(Image\): float pixel values span"):
        open_image(Image.fromarray(np.full((4, 4), values, np.float32), mode="F"), 1)


def test_sixteen_bit_array_and_pil_image_give_the_same_pixels():
    twelve_bit = _picture()[..., 1].astype(np.uint16) * 16  # 12-bit sensor data in uint16
    a = np.asarray(open_image(twelve_bit))
    assert a.max() >= 250  # stretched by its maximum, not shifted to near black
    np.testing.assert_array_equal(a, np.asarray(open_image(Image.fromarray(twelve_bit))))


@pytest.mark.parametrize("mode", ["La", "RGBa"])
def test_premultiplied_alpha_modes_convert(tiny, mode):
    img = Image.new(mode, (8, 8))
    assert open_image(img).mode == "RGB"
    assert tiny.encode_image([img]).shape == (1, tiny.dim)


@pytest.mark.parametrize("call", [
    lambda m: m.encode_text(["ok", "x\udc80y"]),
    lambda m: m.encode(["ok", "x\udc80y"]),
    lambda m: m.encode_text(["ok"], instruction="\ud800"),
])
def test_lone_surrogates_are_refused_by_position(tiny, call):
    with pytest.raises(EncodeInputError, match=r"(#1|instruction).* is not valid Unicode: lone surrogate at position \d+ \(U\+D[89A-F][0-9A-F]{2}\)"):
        call(tiny)


def test_numpy_integers_work_for_dim_and_batch_size_and_bools_do_not(tiny):
    ref = tiny.encode_text(["a cat"], dim=16)
    np.testing.assert_allclose(tiny.encode_text(["a cat"], dim=np.int64(16), batch_size=np.int32(4)), ref, atol=1e-6)
    with pytest.raises(EncodeInputError, match="dim must be an int"):
        tiny.encode_text(["a cat"], dim=True)
    with pytest.raises(EncodeInputError, match="batch_size must be a positive int"):
        tiny.encode_text(["a cat"], batch_size=True)


def test_a_bare_image_text_tuple_is_refused_as_ambiguous(tiny):
    img = Image.fromarray(_picture())
    with pytest.raises(EncodeInputError, match=r"bare \(image, text\) tuple is ambiguous"):
        tiny.encode((img, "a caption"))
    assert tiny.encode([(img, "a caption")]).shape == (1, tiny.dim)


def test_similarity_takes_numpy_and_torch_mixed(tiny):
    a = tiny.encode_text(["a cat", "a dog"])
    b = tiny.encode_text(["a cat"], as_tensor=True)
    mixed = tiny.similarity(a, b)
    assert isinstance(mixed, np.ndarray) and mixed.shape == (2, 1)
    np.testing.assert_allclose(mixed, a @ b.numpy().T, atol=1e-6)
    assert isinstance(tiny.similarity(torch.from_numpy(a), b), torch.Tensor)


def test_load_names_what_is_wrong_with_a_path(tmp_path, monkeypatch):
    import json

    import mmembed
    from mmembed.registry import UnknownModelError

    (tmp_path / "empty").mkdir()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text(json.dumps({"name": "x", "backbone": {}}))
    (tmp_path / "file").write_text("x")
    monkeypatch.chdir(tmp_path)
    for name, message in [("", "model name must be a non-empty str"),
                          ("empty", "has no config.json: it is neither a saved mmembed model"),
                          ("half", "has an mmembed config.json but no model.safetensors"),
                          ("file", "is a file; a model is a name"),
                          ("./adapters/gone", "no such folder './adapters/gone'"),
                          (str(tmp_path / "gone"), "no such folder"),
                          # "empty/gone" could be a hub id, but its first part is a local folder: a path with a typo
                          ("empty/gone", "no such folder 'empty/gone'.*'empty' is a local folder")]:
        with pytest.raises(UnknownModelError, match=message):
            mmembed.load(name)
