"""Neighbour pictures: a text's embedding nudged toward the pictures whose captions it is closest to.

The memory of training pictures (mmembed.neighbour_captions) read the other way (session 45). Each memory picture
keeps a few of its captions as KEYS (one per language of `text_langs`, embedded by the plain text path) and its
document embedding (what an index holds for it) as the VALUE. A text finds the keys nearest to it and adds the
values of their pictures:

    key (n, p)      = normalize((t - mu) @ P)                      t: the text's embedding; P (D, p) principal directions
    s (n, M)        = key @ keys^T                                 cosines to the M caption keys
    top text_k      -> weights softmax(s_top / text_temperature)   (n, k)
    pictures        = normalize(sum_k weights_k * value[picture_of[top_k]])
    text embedding  = normalize(t + text_weight * pictures)

One caption text keyed to several pictures is one stored row repeated, so those keys tie for every text; with
`text_tied_keys = "mean"` a tied key's value is the mean of all their pictures (KeyGroups), not whichever the top k
took (results/session49-perlang: level with "any" on dev).

Why: a text query for a held-out concept ("cat") is near training captions in its own language ("cat face"), and the
pictures of those captions sit where the held-out picture sits in the space, so the query lands on the pictures' side
(dev emoji text -> image R@1 16.5 -> 23.0 in the session-45 probe). Only texts compared with images get it
(config.TextAgainst): given to every text it wrecked dev cross-lingual retrieval (parallel 91.1 -> 68.6), since names
and sentences far from the memory's captions borrow unrelated pictures, differently in each language.

Storage (shipped with the adapter): keys int8 in `text_key_dims` principal directions with a scale per row, values
int8 in `text_picture_dims` principal directions of the pictures' embeddings: 3.5 MB for 7k pictures x 10 languages
(stage 46a), 5.6 MB x 20 (stage 46b: keys in a language a query is written in lift it most, results/session46-keys20),
9.6 MB x 40 (stage 47a, with the picture memory stored as int8 to make room: results/session47-keys40).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from .config import TiedKeys


def principal_basis(centred: torch.Tensor, p: int) -> torch.Tensor:
    """(n, d) centred rows -> (d, p) their top-p principal directions (zero columns when n < p)."""
    if p >= centred.shape[1]:
        return torch.eye(centred.shape[1])
    basis = torch.linalg.svd(centred, full_matrices=False).Vh[:p].T  # (d, min(n, d)) -> (d, p)
    if basis.shape[1] < p:
        basis = torch.cat([basis, basis.new_zeros(basis.shape[0], p - basis.shape[1])], dim=1)
    return basis


def int8_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, d) float rows -> (n, d) int8 and (n,) fp16 scales with x ~ int8 * scale."""
    scale = x.abs().amax(dim=-1).clamp_min(1e-8) / 127
    return (x / scale.unsqueeze(-1)).round().clamp(-127, 127).to(torch.int8), scale.to(torch.float16)


def scaled_scores(query: torch.Tensor, rows: torch.Tensor, scale: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(n, p) float queries and (M, p) stored rows (int8 with (M,) scales from int8_rows, or fp16 with None) -> (n, M)
    dot products. The scales multiply the (n, M) scores, not the (M, p) rows: a query is one row, the table many."""
    scores = query @ rows.float().T
    return scores if scale is None else scores * scale.float()


def scaled_rows(rows: torch.Tensor, scale: Optional[torch.Tensor], index: torch.Tensor) -> torch.Tensor:
    """(M, p) stored rows (int8 with (M,) scales, or fp16 with None) -> (..., p) float32 rows at `index` (...)."""
    out = rows[index].float()
    return out if scale is None else out * scale[index].float().unsqueeze(-1)


@dataclass(frozen=True)
class KeyGroups:
    """Keys with the same stored row (they tie for every text), found from the stored keys alone."""
    of_key: torch.Tensor  # (M,) the group of each key
    size: torch.Tensor  # (G,) keys in each group
    start: torch.Tensor  # (G,) where each group's keys begin in `members`
    members: torch.Tensor  # (M,) the keys, grouped

    @classmethod
    def of(cls, keys: torch.Tensor, scale: torch.Tensor) -> "KeyGroups":
        """(M, p) int8 key rows and their (M,) fp16 scales: a key's group is its exact row and scale."""
        rows = torch.cat([keys.to(torch.int16), scale.view(torch.int16).unsqueeze(1)], dim=1)  # (M, p + 1)
        _, of_key, size = torch.unique(rows, dim=0, return_inverse=True, return_counts=True)
        return cls(of_key, size, size.cumsum(0) - size, torch.argsort(of_key, stable=True))

    def spread(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(L,) keys -> (S,) every key each one ties with and (S,) which of the L it belongs to."""
        group = self.of_key[keys]  # (L,)
        size = self.size[group]  # (L,)
        owner = torch.repeat_interleave(torch.arange(len(keys), device=keys.device), size)  # (S,)
        offset = torch.arange(len(owner), device=keys.device) - torch.repeat_interleave(size.cumsum(0) - size, size)
        return self.members[self.start[group][owner] + offset], owner


class NeighbourPictures(nn.Module):
    def __init__(self, dim: int, pictures: int, keys: int, key_dims: int, picture_dims: int):
        super().__init__()
        self._groups: Optional[tuple[torch.Tensor, int, KeyGroups]] = None  # (the keys, their version, the groups)
        p, q = min(key_dims, dim), min(picture_dims, dim)
        self.register_buffer("key_mean", torch.zeros(dim))  # (D,) mean of the caption keys' embeddings
        self.register_buffer("key_basis", torch.zeros(dim, p, dtype=torch.float16))  # (D, p)
        self.register_buffer("keys", torch.zeros(keys, p, dtype=torch.int8))  # (M, p) unit rows x scale
        self.register_buffer("key_scale", torch.zeros(keys, dtype=torch.float16))  # (M,) all 0: not built
        self.register_buffer("key_picture", torch.zeros(keys, dtype=torch.int32))  # (M,) memory picture of each key
        self.register_buffer("picture_mean", torch.zeros(dim))  # (D,)
        self.register_buffer("picture_basis", torch.zeros(dim, q, dtype=torch.float16))  # (D, q)
        self.register_buffer("pictures", torch.zeros(pictures, q, dtype=torch.int8))  # (N, q) coefficients x scale
        self.register_buffer("picture_scale", torch.zeros(pictures, dtype=torch.float16))  # (N,)

    @property
    def built(self) -> bool:
        return bool(self.key_scale.numel()) and bool(self.key_scale.any())

    def key_groups(self) -> KeyGroups:
        """The groups of tied keys, found once per key table: a fill, a move to another device or a load into the
        buffer (a new tensor, or an in-place write that bumps its version) finds them again."""
        if self._groups is None or self._groups[0] is not self.keys or self._groups[1] != self.keys._version:
            self._groups = (self.keys, self.keys._version, KeyGroups.of(self.keys, self.key_scale))
        return self._groups[2]

    def mix(self, text_emb: torch.Tensor, k: int, temperature: float, tied: TiedKeys = "any") -> torch.Tensor:
        """(n, D) text embeddings -> (n, D) unit mix of the values of the pictures of their k nearest keys (with
        tied="mean", each key's value is the mean of the pictures of every key it ties with)."""
        key = nn.functional.normalize((text_emb.float() - self.key_mean) @ self.key_basis.float(), dim=-1)  # (n, p)
        top = scaled_scores(key, self.keys, self.key_scale).topk(min(k, len(self.keys)), dim=-1)  # (n, k) of (n, M)
        weights = (top.values / temperature).softmax(dim=-1)  # (n, k)
        if tied == "mean":
            groups, flat = self.key_groups(), top.indices.reshape(-1)  # (n * k,)
            tied_keys, owner = groups.spread(flat)  # (S,) keys, (S,) of the n * k
            coeffs = scaled_rows(self.pictures, self.picture_scale, self.key_picture[tied_keys].long())  # (S, q)
            summed = coeffs.new_zeros(len(flat), coeffs.shape[1]).index_add_(0, owner, coeffs)
            count = groups.size[groups.of_key[flat]].unsqueeze(1)  # (n * k, 1) keys in each one's group
            coeffs = (summed / count).view(*top.indices.shape, -1)  # (n, k, q): the values are affine in them
        else:
            coeffs = scaled_rows(self.pictures, self.picture_scale, self.key_picture[top.indices].long())  # (n, k, q)
        values = coeffs @ self.picture_basis.float().T + self.picture_mean  # (n, k, D)
        return nn.functional.normalize((weights.unsqueeze(-1) * values).sum(dim=1), dim=-1)

    @torch.no_grad()
    def fill(self, key_emb: torch.Tensor, key_picture: torch.Tensor, picture_emb: torch.Tensor) -> None:
        """(M, D) caption embeddings, (M,) the memory picture each belongs to, (N, D) the pictures' embeddings."""
        n, m = len(picture_emb), len(key_emb)
        if key_emb.ndim != 2 or picture_emb.ndim != 2 or tuple(key_picture.shape) != (m,) or m < 1 or n < 1:
            raise ValueError(f"neighbour pictures: need (M, D) caption keys with M >= 1, (M,) picture rows and (N, D) "
                             f"pictures, got {tuple(key_emb.shape)}, {tuple(key_picture.shape)}, {tuple(picture_emb.shape)}")
        dim = self.key_mean.shape[0]
        if key_emb.shape[1] != dim or picture_emb.shape[1] != dim:
            raise ValueError(f"neighbour pictures: keys and pictures must have {dim} dims, got {key_emb.shape[1]} and "
                             f"{picture_emb.shape[1]}")
        if int(key_picture.min()) < 0 or int(key_picture.max()) >= n:
            raise ValueError(f"neighbour pictures: a key names picture row {int(key_picture.max())} of {n}")
        device = self.key_mean.device
        keys = nn.functional.normalize(key_emb.detach().float().cpu(), dim=-1)
        key_mean = keys.mean(dim=0)
        key_basis = principal_basis(keys - key_mean, self.key_basis.shape[1]).half()
        key_rows, key_scale = int8_rows(nn.functional.normalize((keys - key_mean) @ key_basis.float(), dim=-1))
        pictures = nn.functional.normalize(picture_emb.detach().float().cpu(), dim=-1)
        picture_mean = pictures.mean(dim=0)
        picture_basis = principal_basis(pictures - picture_mean, self.picture_basis.shape[1]).half()
        picture_rows, picture_scale = int8_rows((pictures - picture_mean) @ picture_basis.float())
        self.key_mean, self.key_basis = key_mean.to(device), key_basis.to(device)
        self.keys, self.key_scale = key_rows.to(device), key_scale.to(device)
        self.key_picture = key_picture.to(device, torch.int32)
        self.picture_mean, self.picture_basis = picture_mean.to(device), picture_basis.to(device)
        self.pictures, self.picture_scale = picture_rows.to(device), picture_scale.to(device)
