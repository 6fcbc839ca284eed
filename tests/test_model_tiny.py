"""The encode contract and the model's switches, on tiny random-weight configs (every one registered)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import mmembed
from mmembed.model import MMEmbedModel

TEXTS = ["a red apple", "ein roter Apfel", "一个红苹果", "x", "a much longer sentence with many more words in it", ""]


def test_shapes_dtype_unit_norm(tiny_model):
    e = tiny_model.encode_text(TEXTS)
    assert e.shape == (len(TEXTS), tiny_model.dim) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_empty_list_returns_zero_rows(tiny_model):
    assert tiny_model.encode_text([]).shape == (0, tiny_model.dim)
    assert tiny_model.encode_image([]).shape == (0, tiny_model.dim)
    assert tiny_model.encode([]).shape == (0, tiny_model.dim)


def test_order_restored_and_batch_size_invariant(tiny_model):
    full = tiny_model.encode_text(TEXTS, batch_size=32)
    one = np.concatenate([tiny_model.encode_text([t]) for t in TEXTS])
    np.testing.assert_allclose(full, one, atol=1e-5)
    np.testing.assert_allclose(tiny_model.encode_text(TEXTS, batch_size=2), full, atol=1e-5)
    rev = tiny_model.encode_text(TEXTS[::-1])
    np.testing.assert_allclose(rev[::-1], full, atol=1e-5)


def test_padding_side_invariant(tiny_model):
    cfg = tiny_model.config
    left = tiny_model.encode_text(TEXTS)
    cfg.padding_side = "right"
    try:
        right = tiny_model.encode_text(TEXTS)
    finally:
        cfg.padding_side = "left"
    np.testing.assert_allclose(left, right, atol=1e-5)


def test_as_tensor_and_matryoshka_dim(tiny_model):
    t = tiny_model.encode_text(TEXTS, as_tensor=True)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    d16 = tiny_model.encode_text(TEXTS, dim=16)
    assert d16.shape == (len(TEXTS), 16)
    np.testing.assert_allclose(np.linalg.norm(d16, axis=1), 1.0, atol=1e-5)
    full = t.numpy()[:, :16]
    np.testing.assert_allclose(d16, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-5)
    with pytest.raises(ValueError, match="dim must be"):
        tiny_model.encode_text(TEXTS, dim=tiny_model.dim + 1)


def test_instruction_changes_embedding(tiny_model):
    plain = tiny_model.encode_text(["apple"])
    instr = tiny_model.encode_text(["apple"], instruction="Retrieve an image of this")
    assert not np.allclose(plain, instr)


def test_images_and_mixed_inputs(tiny_model, tmp_path):
    red = Image.new("RGB", (40, 30), (255, 0, 0))
    path = tmp_path / "blue.png"
    Image.new("RGB", (20, 20), (0, 0, 255)).save(path)
    arr = np.zeros((16, 16, 3), np.uint8)
    imgs = tiny_model.encode_image([red, str(path), arr])
    assert imgs.shape == (3, tiny_model.dim)
    np.testing.assert_allclose(np.linalg.norm(imgs, axis=1), 1.0, atol=1e-5)
    mixed = tiny_model.encode(["a red apple", red, path, (red, "a red square")])
    assert mixed.shape == (4, tiny_model.dim)
    np.testing.assert_allclose(mixed[0], tiny_model.encode_text(["a red apple"])[0], atol=1e-5)
    np.testing.assert_allclose(mixed[1], imgs[0], atol=1e-5)
    np.testing.assert_allclose(mixed[2], imgs[1], atol=1e-5)
    assert not np.allclose(mixed[3], imgs[0])  # fused differs from the image alone
    sim = tiny_model.similarity(tiny_model.encode_text(TEXTS), imgs)
    assert sim.shape == (len(TEXTS), 3)


@pytest.mark.parametrize("kind", ["last_token", "mean", "weighted_mean", "latent_attention"])
def test_pooling_variants(kind):
    cfg = mmembed.get_config("tiny-random")
    cfg.pooling.kind = kind
    model = MMEmbedModel(cfg)
    e = model.encode_text(TEXTS)
    assert e.shape == (len(TEXTS), model.dim) and np.isfinite(e).all()
    # pooling reads the mask, so padding side does not matter for any pooler
    cfg.padding_side = "right"
    np.testing.assert_allclose(model.encode_text(TEXTS), e, atol=1e-5)


def test_poolers_differ():
    outs = {}
    for kind in ["last_token", "mean", "weighted_mean"]:
        cfg = mmembed.get_config("tiny-random")
        cfg.pooling.kind = kind
        outs[kind] = MMEmbedModel(cfg).encode_text(TEXTS[:3])
    assert not np.allclose(outs["last_token"], outs["mean"])
    assert not np.allclose(outs["mean"], outs["weighted_mean"])


def test_bidirectional_switch_changes_outputs():
    causal_cfg = mmembed.get_config("tiny-random")
    bi_cfg = mmembed.get_config("tiny-random")
    bi_cfg.backbone.attention = "bidirectional"
    causal, bi = MMEmbedModel(causal_cfg), MMEmbedModel(bi_cfg)
    a, b = causal.encode_text(TEXTS[:3]), bi.encode_text(TEXTS[:3])
    assert not np.allclose(a, b, atol=1e-3)
    # with mean pooling the first token's state differs too: bidirectional lets it see the future
    bi_cfg.padding_side = "right"
    np.testing.assert_allclose(bi.encode_text(TEXTS[:3]), b, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-random", "tiny-random-llama"])
def test_truncated_backbone_pools_the_middle_layer(name):
    """num_layers=1 + final_norm=False pools exactly hidden_states[1] of the full 2-layer model."""
    from mmembed.backbone import attention_bias, position_ids_from_mask
    from mmembed.pooling import mean

    full = MMEmbedModel(mmembed.get_config(name))
    cfg = mmembed.get_config(name)
    cfg.backbone.num_layers, cfg.backbone.final_norm, cfg.pooling.kind = 1, False, "mean"
    cut = MMEmbedModel(cfg)
    assert len(cut.backbone.layers) == 1 and cut.backbone.config.num_hidden_layers == 1
    plans = cut.text.text_plans(TEXTS[:3])
    with torch.no_grad():
        embeds, mask = full._assemble(plans, None)
        out = full.backbone(inputs_embeds=embeds, attention_mask=attention_bias(mask, True, embeds.dtype),
                            position_ids=position_ids_from_mask(mask), output_hidden_states=True)
        expected = mean(out.hidden_states[1].float(), mask)
        torch.testing.assert_close(cut.pooled(plans), expected)
    assert not np.allclose(cut.encode_text(TEXTS[:3]), full.encode_text(TEXTS[:3]))


def test_num_layers_out_of_range_names_the_backbone():
    cfg = mmembed.get_config("tiny-random")
    cfg.backbone.num_layers = 5
    with pytest.raises(ValueError, match=r"num_layers=5 but 'tiny-gemma3_text' has 2 layers"):
        MMEmbedModel(cfg)


def test_head_init_identity_or_random():
    cfg = mmembed.get_config("tiny-random")
    cfg.embed_dim = 64  # == hidden size
    assert torch.equal(MMEmbedModel(cfg).head.weight, torch.eye(64))
    cfg.head_init = "random"
    assert not torch.equal(MMEmbedModel(cfg).head.weight, torch.eye(64))


def _tiny_lora_model(pooling: str | None = None) -> MMEmbedModel:
    """tiny-random (its pooling, or `pooling`) with LoRA whose B matrices are non-zero, so it matters."""
    cfg = mmembed.get_config("tiny-random")
    cfg.lora = mmembed.config.LoraConfig(r=4, alpha=8)
    if pooling is not None:
        cfg.pooling.kind = pooling
    model = MMEmbedModel(cfg)
    with torch.no_grad():
        for name, p in model.backbone.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return model


def test_save_load_round_trip_bit_exact(tmp_path):
    model = _tiny_lora_model(pooling="latent_attention")
    before_t = model.encode_text(TEXTS)
    before_i = model.encode_image([Image.new("RGB", (32, 32), (0, 200, 0))])
    model.save(tmp_path / "saved")
    files = sorted(p.name for p in (tmp_path / "saved").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    loaded = mmembed.load(str(tmp_path / "saved"))
    np.testing.assert_array_equal(loaded.encode_text(TEXTS), before_t)
    np.testing.assert_array_equal(loaded.encode_image([Image.new("RGB", (32, 32), (0, 200, 0))]), before_i)
    # the checkpoint holds only trained parts: no base backbone or frozen tower weights
    from safetensors import safe_open

    with safe_open(str(tmp_path / "saved" / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(not k.startswith("image_tower.") for k in keys)
    assert all("lora_" in k for k in keys if k.startswith("backbone."))


def test_lora_merges_for_inference_and_unmerges_for_training():
    """encode() folds LoRA into the base weights (speed); train() takes it back out (gradients)."""
    from peft.tuners.lora import LoraLayer

    model = _tiny_lora_model()
    base = {n: p.detach().clone() for n, p in model.backbone.named_parameters() if "lora_" not in n}
    plans = model.text.text_plans(TEXTS)
    with torch.no_grad():
        unmerged = model(plans)
    merged = model.encode_text(TEXTS, as_tensor=True)
    layers = [m for m in model.backbone.modules() if isinstance(m, LoraLayer)]
    assert layers and all(m.merged for m in layers)
    torch.testing.assert_close(merged, unmerged, rtol=1e-5, atol=1e-5)
    model.train()
    assert not any(m.merged for m in layers)
    for n, p in model.backbone.named_parameters():
        if n in base:
            torch.testing.assert_close(p, base[n], rtol=0, atol=1e-6)
    model(plans).sum().backward()
    assert all(p.grad is not None for n, p in model.backbone.named_parameters() if "lora_A" in n)


def test_truncation_warns_once():
    model = mmembed.load("tiny-random")  # max_length 128
    long = "word " * 500
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = model.encode_text([long, long + "more"])
        model.encode_text([long])
    msgs = [w for w in caught if "TRUNCATED" in str(w.message)]
    assert len(msgs) == 1
    assert a.shape == (2, model.dim)
    np.testing.assert_allclose(a[0], a[1], atol=1e-6)  # both cut to the same content
    plan = model.text.text_plans([long])[0]
    assert len(plan) == model.config.backbone.max_length
    suffix = model.text.ids(model.config.prompt.text_suffix)
    assert plan.before[-len(suffix):] == suffix  # the prompt tail survives truncation


def test_projector_resize_tokens_keeps_the_mlp_and_resamples_positions():
    """2x2 -> 3x3: corner tokens keep the base's position vectors, the centre is their mean, the MLP is shared,
    and a constant feature map gives every token mlp(norm(f)) + its position."""
    from mmembed.config import ProjectorConfig
    from mmembed.vision import VisualProjector

    torch.manual_seed(0)
    proj = VisualProjector(8, 6, ProjectorConfig(num_visual_tokens=4, hidden_size=16))
    with torch.no_grad():
        proj.position.copy_(torch.randn(4, 6))
    base = proj.position.detach().clone()  # (4, d), rows in (top-left, top-right, bottom-left, bottom-right)
    mlp_before = {k: v.clone() for k, v in proj.mlp.state_dict().items()}
    proj.resize_tokens(9)
    pos = proj.position.detach()
    assert pos.shape == (9, 6) and proj.num_tokens == 9 and proj.side == 3
    torch.testing.assert_close(pos[[0, 2, 6, 8]], base)
    torch.testing.assert_close(pos[4], base.mean(0))
    assert all(torch.equal(v, mlp_before[k]) for k, v in proj.mlp.state_dict().items())
    constant = torch.ones(2, 8, 7, 7)
    out = proj(constant)  # (b, 9, d)
    core = proj.mlp(proj.norm(torch.ones(8)))
    torch.testing.assert_close(out[0], core + pos)
    proj.resize_tokens(1)
    torch.testing.assert_close(proj.position.detach()[0], pos.mean(0), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="perfect square"):
        proj.resize_tokens(5)


def test_float16_storage_halves_the_file_and_the_model_that_saved_it_gives_the_loaded_vectors(tmp_path):
    from safetensors.torch import load_file

    from mmembed.serialization import model_fingerprint

    model = _tiny_lora_model()
    with torch.no_grad():
        model.logit_bias.fill_(1e5)  # beyond float16's range
    image = [Image.new("RGB", (32, 32), (0, 200, 0))]
    exact_t = model.encode_text(TEXTS)
    model.save(tmp_path / "fp32")
    model.config.storage_dtype = "float16"
    model.save(tmp_path / "fp16")
    exact, half = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("fp32", "fp16"))
    assert exact.keys() == half.keys()
    assert all(t.dtype == torch.float32 for t in exact.values() if t.is_floating_point())
    beyond = {k for k, t in half.items() if t.dtype == torch.float32}
    assert beyond == {"logit_bias"}  # 1e5 does not fit float16: that tensor stays exact
    assert torch.equal(half["logit_bias"], exact["logit_bias"])
    for key in exact.keys() - beyond:
        if exact[key].is_floating_point():
            assert half[key].dtype == torch.float16
            torch.testing.assert_close(half[key].float(), exact[key], rtol=1e-3, atol=1e-7)
    lora = [k for k in exact if "lora_" in k]
    assert lora and sum(half[k].nbytes for k in lora) * 2 == sum(exact[k].nbytes for k in lora)

    # the live model was rounded to what it saved: it and the loaded folder agree (up to the float noise of taking
    # its merged LoRA back out of the base weights, ~1e-7: rounding moved the vectors ~1e-4), a re-save bit for bit
    loaded = mmembed.load(str(tmp_path / "fp16"))
    assert loaded.config.storage_dtype == "float16"
    live_t, loaded_t = model.encode_text(TEXTS), loaded.encode_text(TEXTS)
    np.testing.assert_allclose(live_t, loaded_t, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.encode_image(image), loaded.encode_image(image), rtol=0, atol=1e-6)
    assert model_fingerprint(model) == model_fingerprint(loaded)
    assert np.abs(live_t - exact_t).max() > 1e-5  # rounding moved the vectors...
    assert float((live_t * exact_t).sum(-1).min()) > 0.999  # ...by little
    from mmembed.serialization import round_to_storage

    assert round_to_storage(model)[1] is False  # rounded already: nothing left to change
    loaded.save(tmp_path / "again")
    again = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert all(torch.equal(again[k], half[k]) and again[k].dtype == half[k].dtype for k in half)


def test_storage_dtype_is_checked_where_it_is_set():
    with pytest.raises(ValueError, match="storage_dtype must be one of 'float32', 'float16', got 'bfloat16'"):
        mmembed.config.ModelConfig(name="x", storage_dtype="bfloat16")
    from mmembed.training.config import TrainConfig

    with pytest.raises(ValueError, match="storage_dtype must be one of float32, float16, got 'fp16'"):
        TrainConfig(storage_dtype="fp16")
