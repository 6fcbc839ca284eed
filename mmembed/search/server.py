"""`mmembed serve`: an OpenAI-compatible embeddings server (FastAPI + uvicorn) with search.

    POST /v1/embeddings  {"input": "text" | ["text", "data:image/png;base64,..."], "model": ...,
                          "dimensions": 256, "encoding_format": "float" | "base64",
                          "input_type": "document" | "query",   (what the images are: config.ImageRole)
                          "against": "texts" | "images"}        (what the texts are compared with: config.TextAgainst)
    POST /v1/search      {"query": "ein roter Apfel", "k": 10, "language": "en", "where": "...",
                          "lexical_weight": 0.15, "query_lang": "de"}
    GET  /health

Works with the official client: `OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
.embeddings.create(model=NAME, input=[...])`. Concurrent requests are merged into one model call
(batching.py). Errors use OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""
from __future__ import annotations

import asyncio
import base64
import socket
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from mmembed.appearance import check_appearance_weight
from mmembed.encoding import borrowed_pictures

from .batching import DynamicBatcher, Encoded
from .server_inputs import EmbeddingRequest, InputError, SearchRequest, ServerSettings, decode_input, input_list


def model_supports_images(model) -> bool:
    return model.image_tower is not None and bool(model.config.image_trained)


@dataclass(frozen=True)
class QueryImage:
    """An image that is a query (a search by image, or input_type "query"): the batcher carries it beside documents
    and the encoder embeds it with role="query" (config.ImageRole), its appearance (mmembed/appearance.py) from the
    same tower pass: a search ranks images by their look, /v1/embeddings drops it (pooling a computed map: no cost)."""

    image: Any


@dataclass(frozen=True)
class TextAgainstImages:
    """A text compared with images (a search text that image rows answer: Collection.texts_against; /v1/embeddings
    with against "images"): embedded with against="images", so it may borrow the pictures its words name
    (mmembed/neighbour_pictures.py), as Collection.search embeds it."""

    text: str


def make_encoder(model, batch_size: int = 32):
    """The blocking function the batcher runs: mixed texts / PIL images / QueryImages / TextAgainstImages -> vectors
    + token counts."""

    def encode(items: list[Any]) -> Encoded:
        queries = [i for i, x in enumerate(items) if isinstance(x, QueryImage)]
        facing = [i for i, x in enumerate(items) if isinstance(x, TextAgainstImages)]
        as_text = [x.text if isinstance(x, TextAgainstImages) else x for x in items]
        looks = None
        if not queries and not facing:  # the common case: one call, as before query images existed
            vectors = model.encode(items, batch_size=batch_size)  # str: text; PIL image: image
        else:
            vectors = np.empty((len(items), model.dim), dtype=np.float32)
            rest = [i for i, x in enumerate(items) if not isinstance(x, QueryImage)]
            if rest:  # one backbone pass per distinct text: a search facing both sides sends its query twice
                first: dict[Any, int] = {}
                keys = [as_text[i] if isinstance(as_text[i], str) else ("item", i) for i in rest]
                for i, key in zip(rest, keys):
                    first.setdefault(key, i)
                vectors[list(first.values())] = model.encode([as_text[i] for i in first.values()], batch_size=batch_size)
                vectors[rest] = vectors[[first[key] for key in keys]]
            if facing:  # the plain vectors, then the pictures their words name (encoding.borrowed_pictures)
                plain = torch.from_numpy(vectors[facing])
                vectors[facing] = borrowed_pictures(model, plain, batch_size).numpy()
            if queries:
                vectors[queries], found = model.encode_image_and_appearance(
                    [items[i].image for i in queries], batch_size=batch_size, role="query")
                looks = [None] * len(items)
                for i, look in zip(queries, found):
                    looks[i] = look
        texts = [x for x in as_text if isinstance(x, str)]
        lengths = iter(len(ids) for ids in model.tokenizer.encode_batch(texts)) if texts else iter(())
        tokens = [next(lengths) if isinstance(x, str) else model.num_visual_tokens for x in as_text]
        return Encoded(np.asarray(vectors, dtype=np.float32), tokens, looks)

    return encode


def _truncate(vectors: np.ndarray, dimensions: Optional[int], full: int) -> np.ndarray:
    if dimensions is None:
        return vectors
    if not 1 <= dimensions <= full:
        raise InputError(422, f"dimensions must be between 1 and {full}, got {dimensions}", "dimensions")
    cut = vectors[:, :dimensions]
    return cut / np.linalg.norm(cut, axis=1, keepdims=True).clip(min=1e-12)  # Matryoshka: renormalize


def _encode_vector(v: np.ndarray, fmt: str):
    if fmt == "base64":  # what the openai client asks for by default: little-endian float32 bytes
        return base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
    return v.tolist()


def validation_message(errors: list[dict]) -> tuple[str, Optional[str]]:
    """FastAPI's first validation error as (message, param): a JSON syntax error names its character
    offset in the message (not as a param); a field error names the field."""
    first = errors[0] if errors else {}
    loc = [p for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        at = f" at character {loc[0]}" if loc else ""
        detail = (first.get("ctx") or {}).get("error") or first.get("msg", "decode error")
        return f"invalid JSON{at}: {detail}", None
    where = ".".join(str(p) for p in loc)
    msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return f"{where or 'body'}: {msg}", where or None


def create_app(model, collection=None, settings: ServerSettings = ServerSettings()):
    """The FastAPI app serving `model` (and searching `collection`, a mmembed Collection, if given)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from .info import fingerprint_of

    batcher = DynamicBatcher(make_encoder(model), enabled=settings.batching, max_batch=settings.max_batch,
                             max_wait_ms=settings.max_wait_ms, max_delay_ms=settings.max_delay_ms)
    images_ok = model_supports_images(model)
    fingerprint = fingerprint_of(model)  # clients can check it against a collection's record

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="mmembed", description=__doc__, lifespan=lifespan)
    app.state.batcher = batcher

    def error(status: int, message: str, param: Optional[str] = None) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, err: InputError):
        return error(err.status, err.message, err.param)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, err: RequestValidationError):
        return error(422, *validation_message(err.errors()))

    @app.exception_handler(HTTPException)  # unknown path (404), wrong method (405): OpenAI's shape too
    async def _http_error(request: Request, err: HTTPException):
        message = err.detail if isinstance(err.detail, str) else str(err.detail)
        if err.status_code == 404:
            message = (f"{request.method} {request.url.path}: no such endpoint "
                       "(POST /v1/embeddings, POST /v1/search, GET /health)")
        elif err.status_code == 405:
            message = f"{request.method} {request.url.path}: method not allowed"
        return error(err.status_code, message)

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            return error(413, f"request body of {int(length):,} bytes; the limit is {settings.max_body_bytes:,}")
        return await call_next(request)

    def check_model(name: Optional[str]) -> None:
        if name not in (None, "", model.name, "mmembed"):
            raise InputError(404, f"model {name!r} is not served here; this server serves {model.name!r}", "model")

    @app.get("/health")
    async def health():
        return {
            "status": "ok", "model": model.name, "version": str(model.config.version), "fingerprint": fingerprint,
            "dim": model.dim,
            "images": images_ok, "batching": settings.batching, "batches": batcher.stats.summary(),
            "collection": None if collection is None else collection.path,
            "rows": None if collection is None else len(collection),
        }

    @app.post("/v1/embeddings")
    async def embeddings(req: EmbeddingRequest):
        check_model(req.model)
        items = [decode_input(x, i, settings, images_ok) for i, x in enumerate(input_list(req.input, settings))]
        if req.input_type == "query":
            items = [x if isinstance(x, str) else QueryImage(x) for x in items]
        if req.against == "images":
            items = [TextAgainstImages(x) if isinstance(x, str) else x for x in items]
        out = await batcher.embed(items)
        vectors = _truncate(out.vectors, req.dimensions, model.dim)
        used = int(sum(out.tokens))
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": _encode_vector(v, req.encoding_format)}
                     for i, v in enumerate(vectors)],
            "model": model.name,
            "usage": {"prompt_tokens": used, "total_tokens": used},
        }

    async def gloss_of(req: SearchRequest, query: Any):
        """(glossary, English gloss) of a text query with a `query_lang`, or (None, None): nothing to gloss."""
        from mmembed.glossary import GlossaryError, glossary_for, options_problem

        problem = options_problem(isinstance(query, str), req.query_lang, req.gloss_weight)
        if problem is not None:
            raise InputError(422, problem[1], problem[0])
        if req.query_lang is None:
            return None, None

        try:  # the first request in a language reads its dictionary (seconds for German): off the event loop
            glossary = await asyncio.get_running_loop().run_in_executor(None, glossary_for, req.query_lang)
        except GlossaryError as err:
            raise InputError(422, str(err), "query_lang") from None
        return glossary, glossary.gloss(query)

    @app.post("/v1/search")
    async def search(req: SearchRequest):
        if collection is None:
            raise InputError(404, "this server has no collection: start it with `mmembed serve --collection PATH`")
        if not 1 <= req.k <= settings.max_k:
            raise InputError(422, f"k must be between 1 and {settings.max_k}, got {req.k}", "k")
        if not 0 <= req.lexical_weight < float("inf"):
            raise InputError(422, f"lexical_weight must be a finite number >= 0, got {req.lexical_weight}", "lexical_weight")
        if not req.query.strip():
            raise InputError(422, "query is an empty string", "query")
        if req.gloss_weight is not None and not 0 <= req.gloss_weight < float("inf"):
            raise InputError(422, f"gloss_weight must be a finite number >= 0, got {req.gloss_weight}", "gloss_weight")
        if req.appearance_weight is not None:
            try:
                check_appearance_weight(req.appearance_weight)
            except ValueError as err:
                raise InputError(422, str(err), "appearance_weight") from None
        query = decode_input(req.query, 0, settings, images_ok, param="query")
        glossary, gloss = await gloss_of(req, query)
        # as Collection.search embeds a text query (mmembed/search/facing.py): one item per side it faces
        facing = collection.texts_against(req.kind) if isinstance(query, str) else "texts"
        sides = {"texts": [str], "images": [TextAgainstImages], "both": [str, TextAgainstImages]}[facing]
        texts = [query] if gloss is None else [query, gloss]
        items = ([side(t) for side in sides for t in texts] if isinstance(query, str)
                 else [QueryImage(query)])  # an image searched with is a query image
        encoded = await batcher.embed(items)
        looks = None if encoded.looks is None else encoded.looks[0]
        vectors = encoded.vectors[:, : collection.dim]  # (len(items), dim): per side the query (and its gloss)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        per_side = [vectors[s : s + len(texts)] for s in range(0, len(vectors), len(texts))]
        if gloss is not None:
            from mmembed.glossary import fuse_gloss, weight_for

            weight = weight_for(glossary.lang, req.gloss_weight)
            per_side = [fuse_gloss(v[:1], v[1:], np.array([True]), weight) for v in per_side]
        vector = per_side[0][0]
        image_vector = per_side[1][0] if len(per_side) > 1 else None  # facing both: the vector for image rows
        filters = dict(where=req.where, language=req.language, folder=req.folder, tag=req.tag, kind=req.kind)
        try:
            hits = await asyncio.get_running_loop().run_in_executor(
                None, lambda: collection.search_vector(
                    vector, req.k, exact=req.exact, text=query if isinstance(query, str) else None,
                    lexical_weight=req.lexical_weight, appearance=looks, appearance_weight=req.appearance_weight,
                    image_vector=image_vector, **filters))
        except (ValueError, RuntimeError) as err:  # a bad `where` clause, typically
            raise InputError(422, f"search failed: {err}", "where") from None
        return {
            "object": "list", "model": model.name, "collection": collection.path,
            "data": [{"rank": h.rank, "score": h.score, "id": h.document.id, "kind": h.document.kind,
                      "text": h.document.text, "image": h.document.image, "folder": h.document.folder,
                      "language": h.document.language, "tags": list(h.document.tags), "meta": h.document.meta}
                     for h in hits],
        }

    return app


class BackgroundServer:
    """Run an app with uvicorn in a thread on 127.0.0.1 (tests, notebooks, benchmarks).

        with BackgroundServer(app) as url: ...   # url = "http://127.0.0.1:PORT"
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))  # port 0: a free port, chosen by the OS, with no race
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def serve(model_name: Optional[str], collection_path: Optional[str], host: str, port: int,
          settings: ServerSettings = ServerSettings()) -> None:
    """Load the model (and open the collection) and serve until Ctrl-C."""
    import uvicorn

    from ..registry import load
    from .collection import Collection

    collection = None
    if collection_path:
        collection = Collection(collection_path, model=model_name, create=False)
        model = collection.model
    else:
        model = load(model_name)
    uvicorn.run(create_app(model, collection, settings), host=host, port=port, log_level="info")
