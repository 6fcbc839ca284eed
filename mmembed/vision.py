"""Image front end: a timm image tower and the projector that turns its feature map into tokens.

(b, 3, s, s) -> tower.forward_features -> (b, c, h, w) -> adaptive pool to (sqrt(k), sqrt(k))
-> (b, k, c) -> MLP -> (b, k, d_llm) visual tokens, inserted into the prompt as inputs_embeds.
"""
from __future__ import annotations

import torch
from torch import nn

from .assets import efficientnet_lite0_state_dict_path
from .config import ImageTowerConfig, ProjectorConfig, token_grid_side


def _load_packaged_efficientnet_lite0(model: nn.Module) -> None:
    """The packaged .pth uses other key names; keys pair up by position (296, all shapes match)."""
    source = torch.load(efficientnet_lite0_state_dict_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"efficientnet-lite0 weights have {len(source)} tensors, timm model {len(target)}")
    paired = {}
    for (tkey, tval), (skey, sval) in zip(target.items(), source.items()):
        if tuple(tval.shape) != tuple(sval.shape):
            raise RuntimeError(f"efficientnet-lite0: {skey} {tuple(sval.shape)} does not fit {tkey} {tuple(tval.shape)}")
        paired[tkey] = sval
    model.load_state_dict(paired, strict=True)


def create_image_tower(cfg: ImageTowerConfig) -> nn.Module:
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # weights="none" is random: the same tower every time (saved models rely on it)
        model = timm.create_model(cfg.timm_name, pretrained=False, **cfg.timm_kwargs)
    if cfg.weights == "packaged":
        if cfg.timm_name != "tf_efficientnet_lite0":
            raise ValueError(f"weights='packaged' exists only for tf_efficientnet_lite0, not {cfg.timm_name!r}")
        _load_packaged_efficientnet_lite0(model)
    elif cfg.weights != "none":
        raise ValueError(f"image_tower.weights must be 'packaged' or 'none', got {cfg.weights!r}")
    tower_trained_prefixes(model, cfg)  # a config asking for more trained blocks than the tower has fails here
    if cfg.frozen:
        model.requires_grad_(False)
    return model.eval()


def tower_trained_prefixes(tower: nn.Module, cfg: ImageTowerConfig) -> tuple[str, ...]:
    """State-dict prefixes (inside the tower) of the weights an adapter saves: every one when the tower is not
    frozen, else those of its last `cfg.trained_blocks` blocks (none by default: all come from the package)."""
    if not cfg.frozen:
        return ("",)
    if not cfg.trained_blocks:
        return ()
    blocks = getattr(tower, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        raise ValueError(f"image tower {cfg.timm_name!r} has no `blocks` sequence, so trained_blocks = "
                         f"{cfg.trained_blocks} cannot say which weights were trained")
    if not 0 < cfg.trained_blocks <= len(blocks):
        raise ValueError(f"trained_blocks = {cfg.trained_blocks}, but image tower {cfg.timm_name!r} has "
                         f"{len(blocks)} blocks")
    return tuple(f"blocks.{i}." for i in range(len(blocks) - cfg.trained_blocks, len(blocks)))


def tower_channels(tower: nn.Module) -> int:
    return int(tower.num_features)


class VisualProjector(nn.Module):
    """(b, c, h, w) feature map -> (b, k, d) visual tokens."""

    def __init__(self, in_channels: int, out_dim: int, cfg: ProjectorConfig):
        super().__init__()
        self.side = token_grid_side(cfg.num_visual_tokens)
        self.num_tokens = cfg.num_visual_tokens
        self.norm = nn.LayerNorm(in_channels)
        self.mlp = nn.Sequential(nn.Linear(in_channels, cfg.hidden_size), nn.GELU(), nn.Linear(cfg.hidden_size, out_dim))
        self.position = nn.Parameter(torch.zeros(cfg.num_visual_tokens, out_dim))  # (k, d)

    @torch.no_grad()
    def resize_tokens(self, num_tokens: int) -> None:
        """Pool the feature map to another token grid (k -> num_tokens), keeping the trained MLP: it is
        shared by every token. The (s, s) grid of position vectors is resampled bilinearly, corners kept,
        so a 2x2 base becomes a 3x3 one whose corner tokens start where the base's were."""
        side = token_grid_side(num_tokens)
        d = self.position.shape[-1]
        grid = self.position.detach().T.reshape(1, d, self.side, self.side)  # (1, d, s, s)
        if side == 1 or self.side == 1:
            resized = nn.functional.interpolate(grid, size=(side, side), mode="area" if side < self.side else "nearest")
        else:
            resized = nn.functional.interpolate(grid, size=(side, side), mode="bilinear", align_corners=True)
        self.position = nn.Parameter(resized.reshape(d, num_tokens).T.contiguous())  # (k', d)
        self.side, self.num_tokens = side, num_tokens

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] < self.side or features.shape[-2] < self.side:
            raise ValueError(f"feature map {tuple(features.shape[-2:])} is smaller than {self.side}x{self.side} tokens")
        pooled = nn.functional.adaptive_avg_pool2d(features, self.side)  # (b, c, s, s)
        tokens = pooled.flatten(2).transpose(1, 2)  # (b, k, c)
        return self.mlp(self.norm(tokens)) + self.position  # (b, k, d)
