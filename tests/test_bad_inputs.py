"""Bad input gets a clear error naming the input; odd but valid images just work."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

import mmembed
from mmembed.assets import cached_build, verify_cache_dir
from mmembed.encoding import EncodeInputError
from mmembed.images import ImageInputError, open_image


@pytest.mark.parametrize(
    "texts, match",
    [
        (["ok", None], r"text #1 is NoneType"),
        (["ok", 3], r"text #1 is int"),
        (None, "expected a list of strings"),
        ([b"bytes"], r"text #0 is bytes"),
    ],
)
def test_bad_texts_name_the_item(tiny, texts, match):
    with pytest.raises(EncodeInputError, match=match):
        tiny.encode_text(texts)


def test_empty_and_whitespace_strings_embed(tiny):
    e = tiny.encode_text(["", "   ", "a"])
    assert e.shape == (3, tiny.dim) and np.isfinite(e).all()


def test_single_string_is_one_row(tiny):
    assert tiny.encode_text("hello").shape == (1, tiny.dim)


def test_bad_batch_size(tiny):
    with pytest.raises(EncodeInputError, match="batch_size"):
        tiny.encode_text(["a"], batch_size=0)


def test_missing_path(tiny, tmp_path):
    with pytest.raises(ImageInputError, match=r"image #1 .*nope\.png.*does not exist"):
        tiny.encode_image([Image.new("RGB", (8, 8)), str(tmp_path / "nope.png")])


def test_parallel_decoding_names_the_first_bad_image_and_keeps_order(tiny, tmp_path):
    """Decoding runs in threads: the result equals one-by-one decoding and the first bad input (in
    the caller's order, not the batch's) is the one named."""
    from mmembed.images import images_to_tensor

    imgs = [Image.new("RGB", (8 + i, 12), (30 * i, 0, 255 - 30 * i)) for i in range(8)]
    batched = images_to_tensor(imgs, 16, (0.5,) * 3, (0.5,) * 3)
    one_by_one = torch.cat([images_to_tensor([im], 16, (0.5,) * 3, (0.5,) * 3) for im in imgs])
    assert torch.equal(batched, one_by_one)
    bad = imgs[:3] + [str(tmp_path / "first.png")] + imgs[3:6] + [str(tmp_path / "second.png")]
    with pytest.raises(ImageInputError, match=r"image #3 .*first\.png"):
        tiny.encode_image(bad, batch_size=16)
    with pytest.raises(ImageInputError, match=r"image #12 .*first\.png"):
        images_to_tensor(bad, 16, (0.5,) * 3, (0.5,) * 3, indices=range(9, 17))


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageInputError, match="is a folder"):
        open_image(tmp_path)


def test_not_an_image_file(tiny, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a PNG")
    with pytest.raises(ImageInputError, match=r"notes\.png.*not a readable image"):
        tiny.encode_image([fake])


def test_truncated_jpeg(tiny, tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageInputError, match=r"cut\.jpg.*(damaged|truncated)"):
        tiny.encode_image([path])


def test_wrong_types(tiny):
    with pytest.raises(ImageInputError, match="got None"):
        tiny.encode_image([None])
    with pytest.raises(ImageInputError, match="expected a path, PIL.Image or numpy array"):
        tiny.encode_image([123])
    with pytest.raises(ImageInputError, match=r"array shape \(4, 4, 2\)"):
        tiny.encode_image([np.zeros((4, 4, 2), np.uint8)])
    with pytest.raises(ImageInputError, match="NaN"):
        tiny.encode_image([np.full((4, 4, 3), np.nan, np.float32)])
    with pytest.raises(EncodeInputError, match=r"item #1 is int"):
        tiny.encode(["text", 5])


def _modes():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red -> white
    pal = Image.new("RGB", (20, 20), (0, 128, 0)).convert("P")
    i16 = Image.fromarray((np.arange(400, dtype=np.uint16).reshape(20, 20) * 150))
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))
    gray = Image.new("L", (20, 20), 90)
    one = Image.new("RGB", (1, 1), (1, 2, 3))
    return {"rgba": rgba, "palette": pal, "16bit": i16, "cmyk": cmyk, "gray": gray, "1x1": one}


@pytest.mark.parametrize("mode", list(_modes()))
def test_odd_modes_encode(tiny, mode, tmp_path):
    img = _modes()[mode]
    rgb = open_image(img)
    assert rgb.mode == "RGB"
    path = tmp_path / f"{mode}.{'jpg' if mode == 'cmyk' else 'png'}"
    img.save(path)
    e = tiny.encode_image([img, path])
    assert e.shape == (2, tiny.dim) and np.isfinite(e).all()


def test_transparency_becomes_white():
    assert open_image(Image.new("RGBA", (4, 4), (255, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)


def test_uint16_and_float_arrays():
    assert open_image(np.full((4, 4), 65535, np.uint16)).getpixel((0, 0)) == (255, 255, 255)
    assert open_image(np.full((4, 4, 3), 0.5, np.float32)).getpixel((0, 0)) == (128, 128, 128)


def _sideways(upright: Image.Image, orientation: int) -> Image.Image:
    """The stored pixels a camera writes for `upright` with this EXIF orientation tag."""
    stored = {3: upright.transpose(Image.Transpose.ROTATE_180),
              6: upright.transpose(Image.Transpose.ROTATE_90),  # viewers rotate 90 degrees clockwise back
              8: upright.transpose(Image.Transpose.ROTATE_270),
              2: upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.info["exif"] = exif.tobytes()
    return stored


@pytest.mark.parametrize("orientation", [2, 3, 6, 8])
def test_exif_orientation_is_applied_to_files_and_pil_images(tiny, tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 255, (24, 40, 3), dtype=np.uint8)  # landscape, asymmetric
    upright = Image.fromarray(pixels)
    stored = _sideways(upright, orientation)
    path = tmp_path / f"phone-{orientation}.png"
    stored.save(path, exif=stored.info["exif"])
    assert np.array_equal(np.asarray(open_image(path)), pixels)
    assert np.array_equal(np.asarray(open_image(Image.open(path))), pixels)
    e = tiny.encode_image([path, pixels])
    assert np.allclose(e[0], e[1], atol=1e-5)


def test_damaged_exif_keeps_the_image_as_stored(tmp_path):
    path = tmp_path / "bad-exif.png"
    Image.new("RGB", (8, 4), (9, 8, 7)).save(path, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\xff\xff")
    assert open_image(path).size == (8, 4)


def test_huge_image(tiny, tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (10000, 10000), (10, 20, 30)).save(path, quality=50)
    assert tiny.encode_image([path]).shape == (1, tiny.dim)


def test_decompression_bomb_header_is_refused_by_name(tmp_path):
    """A PNG whose header claims 30000x30000 pixels (seen in openclipart-png): refused before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path = tmp_path / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(ImageInputError, match=r"bomb.png.*too many pixels"):
        open_image(path)


def test_unknown_model_lists_known():
    with pytest.raises(KeyError, match="known models: .*tiny-random"):
        mmembed.load("no-such-model")


def test_prompt_only_model_refuses_images_clearly(monkeypatch):
    cfg = mmembed.get_config("tiny-random")
    cfg.image_trained = False
    from mmembed.model import MMEmbedModel

    with pytest.raises(RuntimeError, match="no trained image projector"):
        MMEmbedModel(cfg).encode_image([Image.new("RGB", (8, 8))])


def test_config_rejects_unknown_fields():
    data = mmembed.get_config("tiny-random").to_dict()
    data["pooling"]["kindd"] = "mean"
    with pytest.raises(ValueError, match="pooling.*kindd"):
        mmembed.ModelConfig.from_dict(data)


@pytest.mark.parametrize("section, field, value", [("backbone", "attention", "bidir"), ("backbone", "dtype", "fp16"),
                                                   ("pooling", "kind", "cls"), (None, "padding_side", "middle")])
def test_config_refuses_a_choice_it_does_not_know(tiny, tmp_path, section, field, value):
    """A misspelt choice in a hand-edited config.json is an error naming the file, the field and the choices,
    not a model that silently takes the other branch (attention: anything but "causal" used to run bidirectional)."""
    import json

    from mmembed.serialization import CheckpointError

    tiny.save(tmp_path / "model")
    path = tmp_path / "model" / "config.json"
    data = json.loads(path.read_text())
    (data[section] if section else data)[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=rf"config.json is not a valid mmembed config: .*{field} must be one of .*got '{value}'"):
        mmembed.load(tmp_path / "model")
    with pytest.raises(ValueError, match=f"got '{value}'"):  # and configs built in code
        mmembed.ModelConfig.from_dict(data)


@pytest.mark.parametrize("section", ["sources", "dev"])
def test_train_config_rejects_repeated_names(section):
    from mmembed.training.config import TrainConfig

    data = {"sources": [{"name": "emoji", "path": "a/train.jsonl"}, {"name": "parallel", "path": "b/train.jsonl"}],
            "dev": [{"name": "emoji", "path": "a/dev.jsonl"}, {"name": "parallel", "path": "b/dev.jsonl"}]}
    TrainConfig.from_dict(data)  # distinct names load
    data[section][1]["name"] = "emoji"
    with pytest.raises(ValueError, match=rf"\[\[{section}\]\] names must be unique, repeated: \['emoji'\]"):
        TrainConfig.from_dict(data, where="run.toml")


def test_cache_corruption_detected_and_rebuilt(tmp_path):
    calls = []

    def build(out):
        calls.append(1)
        (out / "weights.bin").write_bytes(b"\x01" * 1000)

    folder = cached_build("thing", build, home=tmp_path)
    assert verify_cache_dir(folder) is None and len(calls) == 1
    cached_build("thing", build, home=tmp_path)
    assert len(calls) == 1  # warm: not rebuilt
    (folder / "weights.bin").write_bytes(b"\x01" * 999 + b"\x02")  # corrupt one byte
    assert "sha256" in verify_cache_dir(folder)
    cached_build("thing", build, home=tmp_path)
    assert len(calls) == 2 and verify_cache_dir(folder) is None


def test_cache_lacking_a_required_file_is_rebuilt(tmp_path):
    """A cache made by an older mmembed (valid manifest, one file short) is rebuilt, not trusted."""
    calls = []

    def old_build(out):
        (out / "weights.bin").write_bytes(b"\x01")

    def new_build(out):
        calls.append(1)
        old_build(out)
        (out / "tokenizer.model").write_bytes(b"\x02")

    cached_build("thing", old_build, home=tmp_path)
    folder = cached_build("thing", new_build, required=("tokenizer.model",), home=tmp_path)
    assert len(calls) == 1 and (folder / "tokenizer.model").is_file() and verify_cache_dir(folder) is None
    cached_build("thing", new_build, required=("tokenizer.model",), home=tmp_path)
    assert len(calls) == 1  # now complete: not rebuilt again


def test_interrupted_cache_build_leaves_nothing(tmp_path):
    def build(out):
        (out / "half.bin").write_bytes(b"\x00" * 10)
        raise KeyboardInterrupt  # killed mid-conversion

    with pytest.raises(KeyboardInterrupt):
        cached_build("thing", build, home=tmp_path)
    assert not (tmp_path / "thing").exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_saving_never_empties_a_folder_that_is_not_a_model(tiny, tmp_path):
    from mmembed.serialization import CheckpointError

    photos = tmp_path / "Pictures"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(CheckpointError, match=r"Pictures: it is a non-empty folder that is not a saved mmembed model"):
        tiny.save(photos)
    assert sorted(p.name for p in photos.iterdir()) == ["holiday.jpg"]
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CheckpointError, match="it is a file, not a folder"):
        tiny.save(tmp_path / "afile")
    # replacing an earlier-saved model keeps the files that sit beside it (a training log, notes)
    old_umask = os.umask(0o022)  # the 0o644 below is the umask's default mode: pin it (a CI runner may use 0o002)
    try:
        tiny.save(tmp_path / "model")
        (tmp_path / "model" / "train_log.jsonl").write_text('{"step": 1}\n')
        (tmp_path / "model" / "notes").mkdir()
        (tmp_path / "model" / "notes" / "a.txt").write_text("kept")
        tiny.save(tmp_path / "model")
    finally:
        os.umask(old_umask)
    assert (tmp_path / "model" / "train_log.jsonl").read_text() == '{"step": 1}\n'
    assert (tmp_path / "model" / "notes" / "a.txt").read_text() == "kept"
    assert (tmp_path / "model" / "notes").stat().st_mode & 0o111  # still a folder one can enter
    assert (tmp_path / "model" / "config.json").stat().st_mode & 0o777 == 0o644
    tiny.save(tmp_path / "empty")  # a new folder, and an empty one, are fine
    (tmp_path / "empty2").mkdir()
    tiny.save(tmp_path / "empty2")
    assert (tmp_path / "empty2" / "config.json").is_file()


def test_server_inputs_refuse_lone_surrogates_and_pixel_bombs_by_name():
    """What the server decodes from a request: a lone surrogate is a 422 naming the input (the tokenizer
    would raise TypeError, a bare 500), a 20000x20000 PNG header a 413 (PIL's DecompressionBombError)."""
    import base64
    import struct
    import zlib

    from mmembed.search.server_inputs import InputError, ServerSettings, decode_input

    settings = ServerSettings()
    with pytest.raises(InputError, match=r"input\[3\] is not valid Unicode: lone surrogate at position 1") as err:
        decode_input("a\udfff", 3, settings, images_ok=True)
    assert (err.value.status, err.value.param) == (422, "input")
    assert decode_input("a\U0001F600", 0, settings, images_ok=True) == "a\U0001F600"

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    with pytest.raises(InputError, match=r"query: 400,000,000 pixels; the limit is 40,000,000") as err:
        decode_input(url, 0, settings, images_ok=True, param="query")
    assert (err.value.status, err.value.param) == (413, "query")
