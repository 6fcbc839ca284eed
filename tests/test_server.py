"""The server, live on 127.0.0.1: the official openai client, limits, search, and concurrency.

Every request goes to a uvicorn server started by the test on a free loopback port; loops are
bounded (fixed request counts) and the server is stopped afterwards.
"""
from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib
from dataclasses import replace

import httpx
import numpy as np
import openai
import pytest
from PIL import Image
from search_fixtures import roles_model, tiny_model, write_png

from mmembed.search.collection import Collection
from mmembed.search.server import BackgroundServer, create_app
from mmembed.search.server_inputs import ServerSettings

SETTINGS = ServerSettings(max_inputs=8, max_image_bytes=20_000, max_body_bytes=200_000)


def data_url(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def png_header(width: int, height: int) -> str:
    """A base64 PNG that only claims a size: a decompression bomb's header, without its pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")).decode()


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    col = Collection(tmp_path_factory.mktemp("srv") / "c.lance", model=tiny_model())
    col.add_texts(["a red apple", "a green apple"], language="en", tags=["fruit"])
    col.add_texts(["ein Hund"], language="de")
    return col


@pytest.fixture(scope="module")
def server(collection):
    app = create_app(tiny_model(), collection, SETTINGS)
    with BackgroundServer(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0)


def test_openai_client_embeddings_match_the_model(client):
    model = tiny_model()
    texts = ["hello world", "bonjour le monde", "你好，世界"]
    r = client.embeddings.create(model="tiny-random", input=texts)  # the client asks for base64
    got = np.array([d.embedding for d in r.data], dtype=np.float32)
    np.testing.assert_allclose(got, model.encode_text(texts), atol=1e-5)
    assert [d.index for d in r.data] == [0, 1, 2] and r.model == "tiny-random"
    assert r.usage.prompt_tokens == r.usage.total_tokens > 0
    one = client.embeddings.create(model="tiny-random", input="hello world", encoding_format="float")
    np.testing.assert_allclose(one.data[0].embedding, got[0], atol=1e-5)


def test_dimensions_truncate_and_renormalize(client):
    r = client.embeddings.create(model="tiny-random", input=["Matryoshka"], dimensions=16)
    v = np.array(r.data[0].embedding)
    assert v.shape == (16,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(v, tiny_model().encode_text(["Matryoshka"], dim=16)[0], atol=1e-5)


def test_images_as_data_urls(client):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    r = client.embeddings.create(model="tiny-random", input=[data_url(img), "text too"])
    np.testing.assert_allclose(r.data[0].embedding, tiny_model().encode_image([img])[0], atol=1e-5)


def test_query_images_are_embedded_as_queries(tmp_path):
    model = roles_model()
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8))
    document, query = model.encode_image([img])[0], model.encode_image([img], role="query")[0]
    assert not np.allclose(document, query, atol=1e-3)
    col = Collection(tmp_path / "c.lance", model=model)
    (doc_id,) = col.add_images([write_png(tmp_path / "p.png", 3)])
    with BackgroundServer(create_app(model, col, SETTINGS)) as url:
        def embed(**extra):
            r = httpx.post(url + "/v1/embeddings", json={"input": [data_url(img), "text"], **extra}, timeout=60)
            assert r.status_code == 200, r.text
            return [np.array(d["embedding"], dtype=np.float32) for d in r.json()["data"]]

        for extra, expected in (({}, document), ({"input_type": "document"}, document), ({"input_type": "query"}, query)):
            got = embed(**extra)
            np.testing.assert_allclose(got[0], expected, atol=1e-5)
            np.testing.assert_allclose(got[1], model.encode_text(["text"])[0], atol=1e-5)  # texts have no role
        r = httpx.post(url + "/v1/embeddings", json={"input": ["x"], "input_type": "passage"}, timeout=60)
        assert r.status_code == 422 and "input_type" in r.json()["error"]["message"]
        r = httpx.post(url + "/v1/search", json={"query": data_url(img), "k": 1}, timeout=60)
        assert r.status_code == 200, r.text
        hit = r.json()["data"][0]
        stored = col.vectors([doc_id])[0]
        assert hit["id"] == doc_id and hit["score"] == pytest.approx(float(stored @ query), abs=1e-4)


def test_server_never_opens_a_path_a_client_sends(client, tmp_path, monkeypatch):
    path = str(write_png(tmp_path / "secret.png", 7))
    opened: list = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: (opened.append(fp), real_open(fp, *a, **k))[1])
    r = client.embeddings.create(model="tiny-random", input=[path, "file://" + path])
    np.testing.assert_allclose(r.data[0].embedding, tiny_model().encode_text([path])[0], atol=1e-5)
    assert not any(isinstance(fp, str) or hasattr(fp, "__fspath__") for fp in opened)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"input": ["x"] * 9}, 413, "9 inputs in one request; the limit is 8"),
        ({"input": ["data:image/png;base64," + "A" * 40_000]}, 413, "the limit is 20,000"),
        ({"input": "x" * 300_000}, 413, "request body of"),
        ({"input": [[1, 2, 3]]}, 422, "input[0] is token ids"),
        ({"input": []}, 422, "non-empty"),
        ({"input": ["data:image/png;base64,@@@"]}, 422, "not valid base64"),
        ({"input": ["data:image/png;base64," + base64.b64encode(b"not a png").decode()]}, 422, "readable image"),
        ({"input": "x", "dimensions": 65}, 422, "dimensions must be between 1 and 64"),
        ({"input": "x", "model": "gpt-4"}, 404, "is not served here"),
        ({"inputs": "x"}, 422, "input: Field required"),
        ({"input": "x", "dimensions": True}, 422, "dimensions must be a number, got true"),
        ({"input": ["data:image/png;base64," + png_header(8000, 6000)]}, 413, "input[0]: 8000x6000 pixels"),
        ({"input": ["ok", "data:image/png;base64," + png_header(20000, 20000)]}, 413,
         "input[1]: 400,000,000 pixels; the limit is"),
    ],
)
def test_bad_requests_get_openai_style_errors(server, body, status, message):
    r = httpx.post(server[0] + "/v1/embeddings", json=body, timeout=30)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]


def test_data_url_errors_name_the_input_param(server):
    r = httpx.post(server[0] + "/v1/embeddings", json={"input": ["ok", "data:image/png;base64,@@@"]}, timeout=30)
    assert r.status_code == 422 and r.json()["error"]["param"] == "input", r.text
    assert r.json()["error"]["message"].startswith("input[1]: ")


def _raw_post(url: str, body: str) -> httpx.Response:
    """A hand-written JSON body (httpx's json= cannot send a lone surrogate or broken JSON)."""
    return httpx.post(url, content=body.encode("ascii"), headers={"Content-Type": "application/json"}, timeout=30)


def test_lone_surrogates_get_a_422_naming_the_input(server):
    r = _raw_post(server[0] + "/v1/embeddings", '{"input": ["ok", "ab\\ud800"]}')
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["message"] == "input[1] is not valid Unicode: lone surrogate at position 2 (U+D800)" and err["param"] == "input"
    r = _raw_post(server[0] + "/v1/search", '{"query": "\\udc00"}')
    assert r.status_code == 422 and r.json()["error"]["param"] == "query", r.text
    assert "query is not valid Unicode: lone surrogate at position 0" in r.json()["error"]["message"]
    assert _raw_post(server[0] + "/v1/embeddings", '{"input": "\\ud83d\\ude00"}').status_code == 200  # a pair is fine


def test_broken_json_and_unknown_routes_get_openai_style_errors(server):
    url = server[0]
    r = _raw_post(url + "/v1/embeddings", '{"input": ["a",}')
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["message"].startswith("invalid JSON at character 15: ") and err["param"] is None
    r = httpx.post(url + "/v1/nothing", json={"input": "x"})
    assert r.status_code == 404 and "no such endpoint" in r.json()["error"]["message"], r.text
    assert r.json()["error"]["code"] == 404
    r = httpx.get(url + "/v1/embeddings")
    assert r.status_code == 405 and "method not allowed" in r.json()["error"]["message"], r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("body, message", [
    ({"query": ""}, "query is an empty string"),
    ({"query": " \n "}, "query is an empty string"),
    ({"query": "x", "k": True}, "k must be a number, got true"),
    ({"query": "x", "lexical_weight": False}, "lexical_weight must be a number, got false"),
    ({"query": "data:image/png;base64," + png_header(20000, 20000)}, "query: 400,000,000 pixels"),
])
def test_bad_search_requests(server, body, message):
    r = httpx.post(server[0] + "/v1/search", json=body, timeout=30)
    assert r.status_code in (413, 422) and message in r.json()["error"]["message"], r.text


def test_oversized_request_raises_413_in_the_openai_client(client):
    with pytest.raises(openai.APIStatusError) as err:
        client.embeddings.create(model="tiny-random", input=["x"] * 9)
    assert err.value.status_code == 413


def test_search_and_health(server, collection):
    url = server[0]
    health = httpx.get(url + "/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny-random" and health["rows"] == 3
    assert health["fingerprint"] == collection.info.fingerprint  # the model that built the collection
    r = httpx.post(url + "/v1/search", json={"query": "a red apple", "k": 2, "tag": "fruit"}).json()
    assert [h["text"] for h in r["data"]][0] == "a red apple" and len(r["data"]) == 2
    r = httpx.post(url + "/v1/search", json={"query": "x", "where": "language = 'de'"}).json()
    assert [h["text"] for h in r["data"]] == ["ein Hund"]
    assert httpx.post(url + "/v1/search", json={"query": "x", "k": 1000}).status_code == 422
    bad = httpx.post(url + "/v1/search", json={"query": "x", "where": "no_such_column = 1"})
    assert bad.status_code == 422 and "search failed" in bad.json()["error"]["message"]
    # the lexical channel re-orders a text query's hits by spelling (a heavy weight beats random cosines)
    r = httpx.post(url + "/v1/search", json={"query": "Хунд", "k": 3, "lexical_weight": 5.0}).json()
    assert r["data"][0]["text"] == "ein Hund"
    bad = httpx.post(url + "/v1/search", json={"query": "x", "lexical_weight": -1})
    assert bad.status_code == 422 and "lexical_weight must be a finite number >= 0" in bad.json()["error"]["message"]


def test_an_image_query_ranks_like_the_collection_and_checks_its_appearance_weight(tmp_path):
    """/v1/search with an image (a data URL) ranks as Collection.search does, look included."""
    col = Collection(tmp_path / "pics.lance", model=tiny_model())
    pics = [write_png(tmp_path / f"p{i}.png", i, size=(24, 20)) for i in range(6)]
    col.add_images(pics)
    col.add_texts(["a red apple"])
    query = Image.open(pics[4]).convert("RGB")
    with BackgroundServer(create_app(tiny_model(), col, SETTINGS)) as url:
        for weight in (None, 0.0, 1.0):
            body = {"query": data_url(query), "k": 7, **({} if weight is None else {"appearance_weight": weight})}
            r = httpx.post(url + "/v1/search", json=body, timeout=60)
            assert r.status_code == 200, r.text
            expected = [h.document.id for h in col.search(np.asarray(query), k=7, appearance_weight=weight)]
            assert [h["id"] for h in r.json()["data"]] == expected
        for bad, message in ((1.5, "appearance_weight must be a number in [0, 1]"), (True, "must be a number, got true")):
            r = httpx.post(url + "/v1/search", json={"query": data_url(query), "appearance_weight": bad}, timeout=60)
            assert r.status_code == 422 and message in r.json()["error"]["message"], r.text


def test_an_image_query_runs_the_tower_once(tmp_path, monkeypatch):
    """The look comes from the batcher's own tower pass (a second pass cost about one EfficientNet-Lite0 call per
    query); with weight 0 no look is computed at all."""
    col = Collection(tmp_path / "once.lance", model=tiny_model())
    pics = [write_png(tmp_path / f"p{i}.png", i, size=(24, 20)) for i in range(4)]
    col.add_images(pics)
    model = tiny_model()
    tower, seen = model.image_tower, []
    real = tower.forward_features
    monkeypatch.setattr(tower, "forward_features", lambda x: seen.append(len(x)) or real(x))
    query = Image.open(pics[2]).convert("RGB")
    with BackgroundServer(create_app(model, col, SETTINGS)) as url:
        for weight in (None, 0.0):
            seen.clear()
            body = {"query": data_url(query), "k": 3, **({} if weight is None else {"appearance_weight": weight})}
            r = httpx.post(url + "/v1/search", json=body, timeout=60)
            assert r.status_code == 200, r.text
            assert seen == [1], (weight, seen)  # before the reference search below, which shares the tiny model
            assert [h["id"] for h in r.json()["data"]] == [
                h.document.id for h in col.search(np.asarray(query), k=3, appearance_weight=weight)]


def test_concurrent_clients_get_exactly_their_own_embeddings(server):
    """16 clients x 8 requests on loopback; every answer equals the single-request embedding."""
    url, app = server
    clients, per_client = 16, 8
    texts = [f"client {c} request {i}: {'word ' * (i % 5)}" for c in range(clients) for i in range(per_client)]
    expected = {t: tiny_model().encode_text([t])[0] for t in texts}
    latencies: list[float] = []
    answers: dict[str, np.ndarray] = {}
    lock = threading.Lock()
    before = replace(app.state.batcher.stats)

    def worker(c: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for i in range(per_client):
                text = texts[c * per_client + i]
                t0 = time.perf_counter()
                r = http.post("/v1/embeddings", json={"input": text, "encoding_format": "float"})
                dt = time.perf_counter() - t0
                r.raise_for_status()
                with lock:
                    latencies.append(dt)
                    answers[text] = np.array(r.json()["data"][0]["embedding"], dtype=np.float32)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    wall = time.perf_counter() - t0
    assert len(answers) == clients * per_client
    for text, vec in answers.items():
        np.testing.assert_allclose(vec, expected[text], atol=1e-5, err_msg=text)
    stats = app.state.batcher.stats
    calls = stats.model_calls - before.model_calls
    ms = np.percentile(np.array(latencies) * 1000, [50, 99])
    print(f"\n{clients}x{per_client} requests: {len(latencies) / wall:.1f} req/s, p50 {ms[0]:.1f} ms, p99 {ms[1]:.1f} ms, "
          f"{calls} model calls (largest batch {stats.largest_batch})")
    assert calls < clients * per_client and stats.largest_batch > 1  # requests were merged
