"""What the server accepts: request schemas, limits, and turning inputs into texts and images.

An input string is TEXT unless it starts with `data:image/` (then it must be a base64 data URL).
A string that looks like a file path or a URL is embedded as text: the server never opens a path,
and never fetches a URL, that a client sends. Limits answer 413 (too many inputs, too many bytes
or pixels) and 422 (malformed).
"""
from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field, field_validator

_DATA_URL = re.compile(r"^data:(image/[A-Za-z0-9.+-]+)(;[^,]*)?,", re.ASCII | re.IGNORECASE)


@dataclass(frozen=True)
class ServerSettings:
    max_inputs: int = 256  # inputs per request
    max_text_chars: int = 32_000  # characters per text input
    max_image_bytes: int = 8 * 1024 * 1024  # decoded bytes per image
    max_image_pixels: int = 40_000_000  # width * height per image (decompression bombs)
    max_body_bytes: int = 64 * 1024 * 1024  # whole request body (checked from Content-Length)
    max_k: int = 100  # results per search
    batching: bool = True  # dynamic batching of concurrent requests
    max_batch: int = 64  # inputs per merged model call
    max_wait_ms: float = 5.0  # a batch closes after this long with no new request...
    max_delay_ms: float = 50.0  # ...or this long after its first request


class InputError(Exception):
    """A request the server refuses; `status` is 413 or 422 and `message` says which input and why."""

    def __init__(self, status: int, message: str, param: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def _no_bool(value: Any, info) -> Any:
    """JSON true/false is not a number: pydantic would take true as 1."""
    if isinstance(value, bool):
        raise ValueError(f"{info.field_name} must be a number, got {str(value).lower()}")
    return value


class EmbeddingRequest(BaseModel):
    input: Any = Field(..., description="a string or a list of strings; images as data:image/...;base64 URLs")
    model: Optional[str] = None
    dimensions: Optional[int] = Field(None, description="Matryoshka truncation (renormalized)")
    encoding_format: Literal["float", "base64"] = "float"
    input_type: Literal["document", "query"] = Field(
        "document", description="what the input images are: documents (to be searched; the default) or queries "
        "(their texts are ranked: labelling, zero-shot); a model may embed the two differently. Texts: unaffected")
    against: Literal["texts", "images"] = Field(
        "texts", description="what the input texts are compared with (config.TextAgainst): texts (the default) or "
        "images (text -> image queries, labels, captions: they may borrow the pictures their words name). Images: "
        "unaffected")
    user: Optional[str] = None

    _numbers = field_validator("dimensions", mode="before")(_no_bool)


class SearchRequest(BaseModel):
    query: str = Field(..., description="text in any language, or an image as a data URL")
    k: int = 10
    where: Optional[str] = Field(None, description="SQL filter over the metadata columns")
    language: Optional[Union[str, list[str]]] = None
    folder: Optional[Union[str, list[str]]] = None
    tag: Optional[Union[str, list[str]]] = None
    kind: Optional[Literal["image", "text"]] = None
    exact: Optional[bool] = None
    lexical_weight: float = Field(0.0, description="> 0: a text query's hits re-ordered by cosine fused with "
                                  "romanized character n-grams (mmembed/lexical.py); 0.15 is the tuned weight")

    query_lang: Optional[str] = Field(None, description="the text query's language (sw, hi, ar, de, fr, es, ru): "
                                      "glossed with its English from a dictionary (mmembed/glossary.py)")
    gloss_weight: Optional[float] = Field(None, description="weight of the English gloss (default: the language's tuned weight)")
    appearance_weight: Optional[float] = Field(None, description="an image query: image rows ranked by (1 - w) cosine + "
                                               "w the image tower features' cosine (mmembed/appearance.py; default: "
                                               "the tuned 0.5; 0: cosine only)")

    _numbers = field_validator("k", "lexical_weight", "gloss_weight", "appearance_weight", mode="before")(_no_bool)


def input_list(raw: Any, settings: ServerSettings) -> list[str]:
    """The `input` field as a list of strings, with the per-request limits applied."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise InputError(422, "input must be a non-empty string or a non-empty list of strings", "input")
    if len(items) > settings.max_inputs:
        raise InputError(413, f"{len(items)} inputs in one request; the limit is {settings.max_inputs}", "input")
    for i, x in enumerate(items):
        if not isinstance(x, str):
            kind = "token ids" if isinstance(x, (int, list)) else type(x).__name__
            raise InputError(422, f"input[{i}] is {kind}; only strings are accepted (text, or an image data URL)", "input")
        if not x.strip():
            raise InputError(422, f"input[{i}] is an empty string", "input")
    return items


def check_unicode(text: str, where: str, param: str) -> None:
    """JSON may carry a lone UTF-16 surrogate ("\\ud800"); the tokenizer cannot take one: a 422 naming it."""
    from mmembed.tokenizer import unicode_problem

    if problem := unicode_problem(text):
        raise InputError(422, f"{where} {problem}", param)


def decode_input(text: str, index: int, settings: ServerSettings, images_ok: bool, param: str = "input"):
    """A text (returned as is) or a data-URL image (returned as a decoded RGB PIL image). Errors name
    `input[index]` (or `param` itself, e.g. the search `query`) and carry `param`."""
    where = f"input[{index}]" if param == "input" else param
    if not text[:11].lower().startswith("data:image/"):
        if len(text) > settings.max_text_chars:
            raise InputError(413, f"{where} has {len(text):,} characters; the limit is {settings.max_text_chars:,}", param)
        check_unicode(text, where, param)
        return text  # even when it looks like a path or a URL: nothing is opened or fetched
    return decode_data_url(text, where, settings, images_ok, param)


def decode_data_url(url: str, where: str, settings: ServerSettings, images_ok: bool, param: str = "input"):
    import warnings

    from PIL import Image, UnidentifiedImageError

    from ..images import ImageInputError, open_image

    def refuse(status: int, message: str) -> InputError:
        return InputError(status, f"{where}{message}", param)

    m = _DATA_URL.match(url)
    if m is None or "base64" not in (m.group(2) or "").lower():
        raise refuse(422, ": a data URL must look like data:image/png;base64,<data>")
    if not images_ok:
        raise refuse(422, " is an image, but the served model embeds text only (no trained image projector)")
    payload = url[m.end():]
    if len(payload) * 3 // 4 > settings.max_image_bytes:  # checked before decoding anything
        raise refuse(413, f": image of about {len(payload) * 3 // 4:,} bytes; the limit is {settings.max_image_bytes:,}")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise refuse(422, ": the data URL is not valid base64") from None
    try:
        with warnings.catch_warnings():  # the pixel check below replaces PIL's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as err:  # PIL refuses headers over 2x its own limit before we see the size
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        raise refuse(413, f": {size}; the limit is {settings.max_image_pixels:,}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise refuse(422, ": the data URL does not hold a readable image") from None
    if img.width * img.height > settings.max_image_pixels:
        raise refuse(413, f": {img.width}x{img.height} pixels; the limit is {settings.max_image_pixels:,}")
    try:
        return open_image(img, index=0)
    except ImageInputError as err:
        raise refuse(422, f": {str(err).split(': ', 1)[-1]}") from None
