"""Hard-negative mining: the most confusable wrong caption, never a disguised positive; the CLI writes
a manifest that trains with the negatives."""
from __future__ import annotations

import json
import os

import pytest
import torch

from mmembed.data.manifest import PairRecord, read_manifest, write_manifest
from mmembed.training.mining import MiningError, mine_hard_negatives, normalized

# (concept, English anchor, Spanish caption, 2-d direction of both): Germany sits next to Hungary,
# and CLDR's and pycountry's Sweden are one country under two concept ids
ROWS = [
    ("territory:DE", "Germany", "Alemania", (1.0, 0.0)),
    ("territory:HU", "Hungary", "Hungría", (0.95, 0.1)),
    ("territory:SE", "Sweden", "Suecia", (0.0, 1.0)),
    ("country:SE", "Sweden", "suécia", (0.05, 0.99)),
    ("territory:JP", "Japan", "Japón", (-1.0, 0.0)),
    ("territory:KR", "Korea", "Corea", (-0.9, -0.3)),
]


class DirectionEncoder:
    """Encodes each known text as its row's direction: the ranking is known exactly."""

    def __init__(self):
        self.vec = {}
        for _, en, es, v in ROWS:
            self.vec[en] = self.vec[es] = torch.tensor(v)
        self.calls = 0

    def encode_text(self, texts, **kwargs):
        self.calls += 1
        return torch.stack([self.vec[t] for t in texts])


@pytest.fixture
def manifest(tmp_path):
    recs = [PairRecord(concept=c, caption=es, lang="es", text=en, text_lang="en", kind="name") for c, en, es, _ in ROWS]
    recs.append(PairRecord(concept="territory:DE", caption="Deutschland", lang="de", text="Germany", text_lang="en"))
    recs.append(PairRecord(concept="emoji:1f34e", caption="manzana", lang="es", image="a.png"))  # image rows are not mined
    path = tmp_path / "train.jsonl"
    write_manifest(path, recs)
    return path


def test_normalized_ignores_case_accents_and_diacritics():
    assert normalized("Suécia") == normalized("suecia ")
    assert normalized("السّويد") == normalized("السويد")
    assert normalized("Hungría") != normalized("Alemania")


def test_the_hardest_wrong_caption_becomes_the_negative(manifest, tmp_path):
    report = mine_hard_negatives(DirectionEncoder(), manifest, tmp_path / "hn.jsonl", langs=["es"], top_k=1)
    got = {r.text if r.concept != "country:SE" else "Sweden (pycountry)": r for r in read_manifest(tmp_path / "hn.jsonl")}
    assert len(got) == 6 and all(r.lang == "es" and r.text for r in got.values())  # only es text rows
    assert got["Germany"].negative == "Hungría" and got["Hungary"].negative == "Alemania"
    assert got["Japan"].negative == "Corea" and got["Korea"].negative == "Japón"
    # the two Swedens share an English name: each other's caption is a false negative, skipped
    assert got["Sweden"].negative not in ("Suecia", "suécia") and got["Sweden (pycountry)"].negative not in ("Suecia", "suécia")
    assert report.rows == {"es": 6} and report.mined == {"es": 6}
    assert report.top1["es"] == 1.0  # every anchor's best caption is its own (the Swedens count as their own)


def test_mining_is_seeded_and_draws_from_the_top_k(manifest, tmp_path):
    outs = []
    for seed in (0, 0, 1):
        mine_hard_negatives(DirectionEncoder(), manifest, tmp_path / f"s{len(outs)}.jsonl", langs=["es"], top_k=2, seed=seed)
        outs.append([r.negative for r in read_manifest(tmp_path / f"s{len(outs)}.jsonl")])
    assert outs[0] == outs[1]
    germany = read_manifest(tmp_path / "s0.jsonl")[0]
    assert germany.text == "Germany" and germany.negative in ("Hungría", "Suecia", "suécia")  # top 2 wrong: Hungría, a Sweden


def test_bad_mining_input_is_named_and_writes_nothing(manifest, tmp_path):
    out = tmp_path / "hn.jsonl"
    with pytest.raises(MiningError, match="language.*fr"):
        mine_hard_negatives(DirectionEncoder(), manifest, out, langs=["es", "fr"])
    with pytest.raises(MiningError, match="de"):  # one row: no candidate to mine from
        mine_hard_negatives(DirectionEncoder(), manifest, out, langs=["de"])
    with pytest.raises(MiningError, match="top_k"):
        mine_hard_negatives(DirectionEncoder(), manifest, out, langs=["es"], top_k=0)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"concept": "x", "caption": "y", "lang": "es", "text": "z"}) + "\n{oops\n")
    with pytest.raises(MiningError, match="broken.jsonl:2"):
        mine_hard_negatives(DirectionEncoder(), broken, out, langs=["es"])
    assert not out.exists()


def test_out_that_is_the_input_or_a_folder_is_refused_and_the_input_kept(manifest, tmp_path):
    before = manifest.read_bytes()
    link, hard = tmp_path / "link.jsonl", tmp_path / "hard.jsonl"
    link.symlink_to(manifest)
    os.link(manifest, hard)
    for out in (manifest, tmp_path / "." / manifest.name, link, hard):
        with pytest.raises(MiningError, match=f"{out.name} is the input manifest"):
            mine_hard_negatives(DirectionEncoder(), manifest, out, langs=["es"])
    with pytest.raises(MiningError, match="is the input manifest"):  # the link as input, the file as out
        mine_hard_negatives(DirectionEncoder(), link, manifest, langs=["es"])
    with pytest.raises(MiningError, match=f"--out {tmp_path} is a folder"):
        mine_hard_negatives(DirectionEncoder(), manifest, tmp_path, langs=["es"])
    with pytest.raises(MiningError, match="train.jsonl is a file, not a folder"):
        mine_hard_negatives(DirectionEncoder(), manifest, manifest / "hn.jsonl", langs=["es"])
    assert manifest.read_bytes() == before and hard.read_bytes() == before


def test_cli_refuses_out_as_input_before_loading_a_model(manifest, tmp_path):
    from typer.testing import CliRunner

    from mmembed.cli import app

    before = manifest.read_bytes()
    for out in (manifest, tmp_path):
        res = CliRunner().invoke(app, ["mine-negatives", str(manifest), "--out", str(out), "--langs", "es",
                                       "--model", "no-such-model"])  # refused before the model would fail to load
        assert res.exit_code == 1 and res.output.startswith("error: --out") and "Traceback" not in res.output
    assert manifest.read_bytes() == before


def test_unreadable_manifest_is_one_error_naming_the_file(manifest, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mmembed.cli import app
    from mmembed.training import mining

    latin1 = tmp_path / "latin1.jsonl"
    row = {"concept": "x", "caption": "Müller", "lang": "de", "text": "miller"}
    latin1.write_bytes((json.dumps(row, ensure_ascii=False) + "\n").encode("latin-1"))
    with pytest.raises(MiningError, match="latin1.jsonl"):
        mine_hard_negatives(DirectionEncoder(), latin1, tmp_path / "o.jsonl", langs=["de"])
    number = tmp_path / "number.jsonl"
    number.write_text(json.dumps(row | {"text": 5}) + "\n" + json.dumps(row | {"concept": "y"}) + "\n")
    with pytest.raises(MiningError, match="number.jsonl"):
        mine_hard_negatives(DirectionEncoder(), number, tmp_path / "o.jsonl", langs=["de"])
    res = CliRunner().invoke(app, ["mine-negatives", str(latin1), "--out", str(tmp_path / "o.jsonl"), "--langs", "de",
                                   "--model", "tiny-random"])
    assert res.exit_code == 1 and res.output.startswith("error: ") and "latin1.jsonl" in res.output
    assert "Traceback" not in res.output
    # a reader check that does not name the file still comes out naming it
    for exc in (ValueError("text must be a string"), TypeError("bad field"), UnicodeDecodeError("utf-8", b"\xfc", 0, 1, "x")):
        def fail(path, exc=exc):
            raise exc
        monkeypatch.setattr(mining, "read_manifest", fail)
        with pytest.raises(MiningError, match=f"{manifest}: cannot read it as a manifest"):
            mine_hard_negatives(DirectionEncoder(), manifest, tmp_path / "o.jsonl", langs=["es"])
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_mines_with_a_real_model_and_the_result_trains(manifest, tmp_path):
    from typer.testing import CliRunner

    from mmembed.cli import app
    from mmembed.training.config import SourceSpec, TrainConfig
    from mmembed.training.step import plain_step
    from mmembed.training.trainer import Trainer

    out = tmp_path / "hn.jsonl"
    res = CliRunner().invoke(app, ["mine-negatives", str(manifest), "--out", str(out), "--langs", "es",
                                   "--model", "tiny-random", "--top-k", "2"])
    assert res.exit_code == 0, res.output
    assert "es: 6 rows, 6 with a negative" in res.output
    assert all(r.negative and r.negative != r.caption for r in read_manifest(out))
    # mixed batch: mined pairs (with negatives) and plain pairs (without) train together
    cfg = TrainConfig(base="tiny-random", out=str(tmp_path / "run"), name="t", steps=1, batch_size=4, warmup_steps=0,
                      sources=[SourceSpec(name="mined", path=str(out), weight=0.5),
                               SourceSpec(name="plain", path=str(manifest), langs=["es"], kinds=["name"], weight=0.5)])
    tr = Trainer(cfg, progress=False)
    batch = tr.sampler.batch(0, 4)
    assert 0 < sum(p.negative is not None for p in batch) < 4
    tr.optimizer.zero_grad(set_to_none=True)
    assert torch.isfinite(torch.tensor(plain_step(tr.embedder, batch, tr._loss)))
    bad = CliRunner().invoke(app, ["mine-negatives", str(manifest), "--out", str(out), "--langs", "xx", "--model", "tiny-random"])
    assert bad.exit_code == 1 and "xx" in bad.output


def test_mined_negatives_can_join_the_batch_as_whole_pairs(manifest, tmp_path):
    """hard_negatives_as = "batch": the mined negative's own pair is drawn beside its pair (Germany with
    Hungary), no pair carries a negative column, and a training step runs on such batches."""
    from mmembed.training.config import TrainConfig
    from mmembed.training.trainer import Trainer

    cfg = TrainConfig.from_dict(dict(base="tiny-random", out=str(tmp_path / "run"), name="t", steps=1, batch_size=4,
                                     warmup_steps=0, eval_every=100, sources=[
        dict(name="mined", path=str(manifest), langs=["es"], kinds=["name"], hard_negatives_top_k=1,
             hard_negatives_as="batch", one_lang_per_batch=True)]))
    tr = Trainer(cfg, progress=False)
    negative_of = {r.concept: r.negative for r in read_manifest(tmp_path / "run" / "mined" / "mined.jsonl")}
    concept_of = {r.caption: r.concept for r in read_manifest(manifest)}
    for step in range(5):
        batch = tr.sampler.batch(step, 4)
        concepts = {p.concept for p in batch}
        assert len(concepts) == 4 and not any(p.negative for p in batch)
        # every pair whose partner fits is joined by it: at least the first one drawn always is
        assert concept_of[negative_of[batch[0].concept]] == batch[1].concept
    tr.run()
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in logged if "loss" in e]
    assert tr.step == 1 and len(losses) == 1 and torch.isfinite(torch.tensor(losses)).all()


def test_a_recipe_source_mines_its_negatives_before_step_one(manifest, tmp_path):
    """hard_negatives_top_k in a [[sources]] entry: the base model mines once into the run folder, the
    batches carry the negatives, and a resumed run reuses the mined file rather than mining again."""
    from mmembed.training.config import TrainConfig
    from mmembed.training.trainer import Trainer

    def cfg():
        return TrainConfig.from_dict(dict(base="tiny-random", out=str(tmp_path / "run"), name="t", steps=2, batch_size=4,
                                          warmup_steps=0, checkpoint_every=1, eval_every=100, sources=[
            dict(name="mined", path=str(manifest), langs=["es"], kinds=["name"], hard_negatives_top_k=2)]))

    tr = Trainer(cfg(), progress=False)
    mined = tmp_path / "run" / "mined" / "mined.jsonl"
    assert len(read_manifest(mined)) == 6 and all(p.negative for p in tr.sampler.batch(0, 4))
    tr.run()
    stamp = mined.stat().st_mtime_ns
    resumed = Trainer(cfg(), resume=True, progress=False)
    assert mined.stat().st_mtime_ns == stamp and all(p.negative for p in resumed.sampler.batch(1, 4))
    with pytest.raises(ValueError, match="hard_negatives_top_k must be >= 1"):
        TrainConfig.from_dict(dict(sources=[dict(name="x", path="p.jsonl", hard_negatives_top_k=0)]))
    with pytest.raises(ValueError, match="hard_negatives_as must be 'column' or 'batch', got 'row'"):
        TrainConfig.from_dict(dict(sources=[dict(name="x", path="p.jsonl", hard_negatives_top_k=1, hard_negatives_as="row")]))
    with pytest.raises(ValueError, match="needs hard_negatives_top_k"):
        TrainConfig.from_dict(dict(sources=[dict(name="x", path="p.jsonl", hard_negatives_as="batch")]))
    lonely = tmp_path / "lonely.jsonl"  # es pairs plus ONE de pair: nothing in German to mine from
    write_manifest(lonely, [r for r in read_manifest(manifest) if r.image is None])
    with pytest.raises(ValueError, match=r"one pair only in \['de'\]"):
        Trainer(TrainConfig.from_dict(dict(base="tiny-random", out=str(tmp_path / "r3"), steps=1, batch_size=2, sources=[
            dict(name="lonely", path=str(lonely), hard_negatives_top_k=2)])), progress=False)
    with pytest.raises(ValueError, match="image anchor"):
        Trainer(TrainConfig.from_dict(dict(base="tiny-random", out=str(tmp_path / "r2"), steps=1, batch_size=2, sources=[
            dict(name="all", path=str(manifest), hard_negatives_top_k=2)])), progress=False)


def _failing_mining_worker(rank: int, world: int, port: int, manifest: str, out: str, result: str) -> None:
    """One torchrun-like rank whose rank-0 mining fails as a full disk would; writes what each rank raised."""
    import mmembed.training.mining as mining
    from conftest import record_what_this_rank_raises
    from mmembed.training.config import TrainConfig
    from mmembed.training.trainer import Trainer

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    mining.mine_hard_negatives = disk_full
    cfg = TrainConfig.from_dict(dict(base="tiny-random", out=out, name="t", steps=1, batch_size=4, warmup_steps=0,
                                     sources=[dict(name="mined", path=manifest, langs=["es"], kinds=["name"],
                                                   hard_negatives_top_k=1)]))
    record_what_this_rank_raises(rank, world, port, result, lambda: Trainer(cfg, progress=False))


def test_a_mining_failure_on_rank_0_stops_every_rank_with_its_cause(manifest, tmp_path, free_port):
    """Under torchrun only rank 0 mines; when that fails (here: a full disk), every rank raises with rank 0's
    cause and nothing half-mined is left behind. Before, rank 1 sat at the barrier and then died of gloo's
    'Connection closed by peer', which hides why."""
    import torch.multiprocessing as mp

    result = str(tmp_path / "raised")
    mp.spawn(_failing_mining_worker, args=(2, free_port, str(manifest), str(tmp_path / "run"), result), nprocs=2, join=True)
    rank0 = (tmp_path / "raised.0").read_text()
    rank1 = (tmp_path / "raised.1").read_text()
    assert rank0 == "OSError: [Errno 28] No space left on device"
    assert rank1.startswith("RuntimeError: rank 0 failed while mining hard negatives for source 'mined'")
    assert "No space left on device" in rank1
    assert not (tmp_path / "run" / "mined" / "mined.jsonl").exists()
