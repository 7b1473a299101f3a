"""greenmark.ray on a real local Ray instance (ray.init(num_cpus=2)): the pipeline's result
equals the single-machine RadioactivityTest field by field (every count, the p-values, the
curve; only the tables' allocation size may differ), in closed mode on ids and on text, open
mode, KGW and Gumbel, one key and several, with and without a budget, with prompt exclusion and
a filter; bad input gives ValueError/TypeError naming what to fix."""

import json
import sys

import numpy as np
import pytest

import greenmark
from greenmark.radioactivity import RadioactivityTest

from conftest import TOKENIZER, unavailable

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    import greenmark.ray as gray
except ImportError as err:  # pragma: no cover - depends on the environment
    unavailable(err, f"RAY IS NOT IMPORTABLE ({err}): the Ray pipeline tests did NOT run. `make test-python` installs ray[data].")

V = 400
HEX = ["a1" * 32, "b2" * 32, "c3" * 32]
WORDS = "the a cat dog sat on mat and ran far away home fast slow red blue green tree house".split()


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # The make_test recipes below live in this test module: ship them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=300 * 2**20, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def prompts(seed=7):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, V, 8) for _ in range(4)]


def kgw_one():
    return RadioactivityTest([greenmark.Key.from_hex(HEX[0])], greenmark.WatermarkConfig(V))


def kgw_three_budget_filtered():
    config = greenmark.WatermarkConfig(V, gamma=0.5)
    test = RadioactivityTest([greenmark.Key.from_hex(h) for h in HEX], config, max_tuples=150)
    for p in prompts():
        test.exclude_prompt(p)
    rng = np.random.default_rng(8)
    for _ in range(6):  # a filter that admits about half of the windows
        test.add_filter_text(rng.integers(0, V, 40))
    return test


def kgw_two_budget():
    return RadioactivityTest([greenmark.Key.from_hex(h) for h in HEX[:2]], greenmark.WatermarkConfig(V), max_tuples=1500)


def gumbel_two_budget():
    return RadioactivityTest.gumbel([11, 22], V, context_width=2, max_tuples=1000)


def kgw_text():
    return RadioactivityTest([greenmark.Key.from_hex(HEX[0])], greenmark.WatermarkConfig(49152), max_tuples=700)


def corpus(n, seed, *, repeats=True):
    """n short texts (Zipf-ish, so tuples repeat within and across texts), ids shuffled."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n * 3)[:n]
    texts = []
    for _ in range(n):
        length = int(rng.integers(1, 40))
        text = np.minimum(rng.zipf(1.6, length) - 1, V - 1) if repeats else rng.integers(0, V, length)
        texts.append(text.astype(np.int64))
    return ids, texts


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in row.items()}) + "\n")


def parts_cut(make_test, texts, partitions, **columns):
    """Whether every key has more than twice the budget of distinct tuples per part, so each
    part cuts at the budget and folds the rest (the path that must stay exact)."""
    test = make_test()
    budget = test.result()["max_tuples"]
    pooled = test._native.sift_batch(texts, doc_ids=np.arange(len(texts)), **columns)
    return all(len(k["fingerprint"]) > 2 * budget * partitions for k in pooled)


def same(pipeline: RadioactivityTest, direct: RadioactivityTest) -> dict:
    a, b = pipeline.result(), direct.result()
    a.pop("memory_bytes")
    b.pop("memory_bytes")
    assert a == b
    return a


def test_closed_ids_one_key_jsonl_with_prefixes(tmp_path):
    ids, texts = corpus(3000, 1)
    prefixes = [np.array([int(i) % V, 3]) for i in ids]
    write_jsonl(tmp_path / "c.jsonl", [{"id": int(i), "ids": t, "prompt": p} for i, t, p in zip(ids, texts, prefixes)])
    test = gray.radioactivity(kgw_one, tmp_path / "c.jsonl", prefix_column="prompt", partitions=3, batch_size=500)
    direct = kgw_one()
    for k in np.argsort(ids):
        direct.score_text(texts[k], prefix=prefixes[k])
    r = same(test, direct)["keys"][0]
    assert r["n_repeated"] > 1000 and r["n_scored"] > 1000  # real dedup across batches and parts
    assert r["n_seen"] == sum(len(t) for t in texts)  # the prefix gives every token its window


def test_closed_three_keys_budget_prompts_filter_parquet_by_position(tmp_path):
    ids, texts = corpus(3000, 2)
    prompt_list = prompts()
    # Some texts quote prompts, so prompt windows occur in the corpus.
    texts = [np.concatenate([prompt_list[i % 4][:6], t]) if i % 5 == 0 else t for i, t in enumerate(texts)]
    for f in range(3):  # three files, read in sorted path order, rows in file order
        part = texts[f * 1000 : (f + 1) * 1000]
        pq.write_table(pa.table({"ids": pa.array([t.tolist() for t in part])}), tmp_path / f"part-{f}.parquet")
    assert parts_cut(kgw_three_budget_filtered, texts, 4)
    test = gray.radioactivity(kgw_three_budget_filtered, tmp_path, id_column=None, partitions=4, batch_size=400)
    direct = kgw_three_budget_filtered()
    for t in texts:
        direct.score_text(t)
    r = same(test, direct)
    for k in r["keys"]:
        assert k["n_scored"] == 150 and k["n_over_budget"] > 0
        assert k["n_excluded"] > 0 and k["n_filtered"] > 0 and k["n_repeated"] > 0
    assert not r["exploratory"]


def test_open_mode_two_keys_budget(tmp_path):
    ids, texts = corpus(2500, 3)
    rng = np.random.default_rng(4)
    # Predictions: often the input's next token (so some copy a tuple of the input), else random.
    preds = [np.where(rng.random(len(t)) < 0.5, np.roll(t, -1), rng.integers(0, V, len(t))) for t in texts]
    write_jsonl(tmp_path / "o.jsonl", [{"id": int(i), "ids": t, "pred": p} for i, t, p in zip(ids, texts, preds)])
    assert parts_cut(kgw_two_budget, texts, 2, predictions=preds)
    test = gray.radioactivity(kgw_two_budget, str(tmp_path / "o.jsonl"), predictions_column="pred", partitions=2)
    direct = kgw_two_budget()
    for k in np.argsort(ids):
        direct.score_predictions(texts[k], preds[k])
    r = same(test, direct)
    assert all(k["n_copied"] > 0 and k["n_over_budget"] > 0 and k["n_scored"] == 1500 for k in r["keys"])


def test_gumbel_two_keys_budget_parquet(tmp_path):
    ids, texts = corpus(3000, 5)
    pq.write_table(pa.table({"doc": ids, "tokens": pa.array([t.tolist() for t in texts])}), tmp_path / "g.parquet")
    assert parts_cut(gumbel_two_budget, texts, 3)
    test = gray.radioactivity(gumbel_two_budget, tmp_path / "g.parquet", ids_column="tokens", id_column="doc", partitions=3)
    direct = gumbel_two_budget()
    for k in np.argsort(ids):
        direct.score_text(texts[k])
    r = same(test, direct)
    assert all(k["n_scored"] == 1000 and k["score"] > 0 for k in r["keys"])


def test_closed_text_through_the_tokenizer(tmp_path):
    rng = np.random.default_rng(6)
    texts = [" ".join(rng.choice(WORDS, int(rng.integers(2, 15)))) for _ in range(1500)]
    write_jsonl(tmp_path / "t.jsonl", [{"id": i, "text": t} for i, t in enumerate(texts)])
    test = gray.radioactivity(kgw_text, tmp_path / "t.jsonl", text_column="text", tokenizer=TOKENIZER, partitions=2)
    direct = kgw_text()
    encoder = greenmark.TextDetector(TOKENIZER, greenmark.Key.from_hex(HEX[1]), greenmark.WatermarkConfig(49152))
    for t in texts:
        direct.score_text(encoder.encode(t))
    r = same(test, direct)["keys"][0]
    assert r["n_scored"] == 700 and r["n_repeated"] > 0


def test_tokens_out_of_range_found_on_a_worker(tmp_path):
    _, texts = corpus(600, 7)
    texts[321] = np.array([1, 2, V + 5])
    write_jsonl(tmp_path / "bad.jsonl", [{"id": i, "ids": t} for i, t in enumerate(texts)])
    with pytest.raises(greenmark.TokenError, match=r"doc id 321.*out of range for vocab size 400"):
        gray.radioactivity(kgw_one, tmp_path / "bad.jsonl")


def test_bad_input_is_refused_before_running(tmp_path):
    write_jsonl(tmp_path / "c.jsonl", [{"id": 0, "tokens": [1, 2, 3]}])
    with pytest.raises(ValueError, match=r"no column \['ids'\].*'tokens'.*name the right ones"):
        gray.radioactivity(kgw_one, tmp_path / "c.jsonl")
    with pytest.raises(ValueError, match=r"no column \['id2'\].*id_column=None"):
        gray.radioactivity(kgw_one, tmp_path / "c.jsonl", ids_column="tokens", id_column="id2")
    (tmp_path / "junk.jsonl").write_text("this is not json\n")
    with pytest.raises(ValueError, match=r"cannot read corpus file .*junk.jsonl as JSON lines"):
        gray.radioactivity(kgw_one, tmp_path / "junk.jsonl")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match=r"cannot read the corpus"):
        gray.radioactivity(kgw_one, tmp_path / "junk.parquet")
    with pytest.raises(ValueError, match=r"cannot read the corpus at .*missing.jsonl"):
        gray.radioactivity(kgw_one, tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="text_column needs tokenizer="):
        gray.radioactivity(kgw_one, tmp_path / "c.jsonl", text_column="tokens")
    with pytest.raises(ValueError, match="dedup=True"):
        gray.radioactivity(lambda: RadioactivityTest([greenmark.Key.from_hex(HEX[0])], greenmark.WatermarkConfig(V), dedup=False), tmp_path / "c.jsonl")
    with pytest.raises(TypeError, match="make_test must return"):
        gray.radioactivity(lambda: "a test", tmp_path / "c.jsonl")
    with pytest.raises(ValueError, match="partitions must be a positive int"):
        gray.radioactivity(kgw_one, tmp_path / "c.jsonl", ids_column="tokens", partitions=0)


def test_native_halves_in_python():
    """The bindings alone: sift_batch + record_sifted(counts=...) equals scoring in order,
    and bad arrays are refused with a message."""
    ids, texts = corpus(400, 9)
    direct, pooled = kgw_two_budget(), kgw_two_budget()
    for k in np.argsort(ids):
        direct.score_text(texts[k])
    native = pooled._native
    halves = [native.sift_batch(texts[:250], doc_ids=ids[:250]), native.sift_batch(pa.array([t.tolist() for t in texts[250:]]), doc_ids=ids[250:])]
    for key in range(2):
        cat = {n: np.concatenate([h[key][n] for h in halves]) for n in ("fingerprint", "score", "doc", "position", "count")}
        # Across the two batches: keep each fingerprint's first occurrence, sum its counts.
        order = np.lexsort((cat["position"], cat["doc"]))
        fp = cat["fingerprint"][order]
        _, first, inverse = np.unique(fp, return_index=True, return_inverse=True)
        counts = np.bincount(inverse, weights=cat["count"][order]).astype(np.uint64)
        keep = np.sort(first)
        # The native global dedup (what each part runs) agrees, in any row order.
        shuffled = np.random.default_rng(key).permutation(len(fp))
        p = native.pool_sifted(*(cat[n][order][shuffled] for n in ("fingerprint", "score", "doc", "position", "count")))
        by_order = np.lexsort((p["position"], p["doc"]))
        assert np.array_equal(p["fingerprint"][by_order], fp[keep])
        assert np.array_equal(p["count"][by_order], counts[inverse[keep]])
        native.record_sifted(key, fp[keep], cat["score"][order][keep], counts=counts[inverse[keep]], **{n: sum(h[key][n] for h in halves) for n in ("n_excluded", "n_filtered", "n_copied")})
    same(pooled, direct)
    # The core's pooling end to end: the two batches' rows pooled, folded to a budget below
    # the corpus's distinct tuples (one part: the whole corpus) and recorded equal the direct
    # tape too (sifting does not depend on the budget).
    budget = 300

    def small():
        return RadioactivityTest([greenmark.Key.from_hex(h) for h in HEX[:2]], greenmark.WatermarkConfig(V), max_tuples=budget)

    direct, cored = small(), small()
    for k in np.argsort(ids):
        direct.score_text(texts[k])
    for key in range(2):
        cat = {n: np.concatenate([h[key][n] for h in halves]) for n in ("fingerprint", "score", "doc", "position", "count")}
        left_out = {n: sum(h[key][n] for h in halves) for n in ("n_excluded", "n_filtered", "n_copied")}
        p = native.pool_sifted(*cat.values(), max_tuples=budget, **left_out)
        assert len(p["fingerprint"]) == budget and p["n_over_budget"] > 0
        assert p["n_excluded"] == left_out["n_excluded"]
        cored._native.record_pooled(key, *(p[n] for n in cat), **{n: p[n] for n in (*left_out, "n_over_budget")})
    assert same(cored, direct)["budget_reached"]
    z = np.zeros(2, np.uint64)
    with pytest.raises(ValueError, match="different tests"):
        native.pool_sifted(np.array([7, 7], np.uint64), np.array([0.0, 1.0]), z, z, np.ones(2, np.uint64))
    with pytest.raises(ValueError, match="count 0"):
        native.pool_sifted(z, np.zeros(2), z, z, z)
    one = native.sift_text(texts[0])
    assert len(one) == 2 and one[0]["fingerprint"].dtype == np.uint64
    with pytest.raises(TypeError, match="fingerprints must be a 1-D numpy uint64 array"):
        native.record_sifted(0, [1, 2], np.zeros(2))
    with pytest.raises(ValueError, match="one count per fingerprint"):
        native.record_sifted(0, np.zeros(2, np.uint64), np.zeros(2), counts=np.ones(3, np.uint64))
    with pytest.raises(ValueError, match="scores must be 0 or 1"):
        native.record_sifted(0, np.zeros(1, np.uint64), np.array([0.5]))
    with pytest.raises(ValueError, match="doc id 4 is given to texts"):
        native.sift_batch(texts[:2], doc_ids=[4, 4])
    with pytest.raises(ValueError, match="3 doc_ids for 2 texts"):
        native.sift_batch(texts[:2], doc_ids=[1, 2, 3])
    with pytest.raises(ValueError, match="null row"):
        native.sift_batch(pa.array([[1, 2], None]), doc_ids=[1, 2])
