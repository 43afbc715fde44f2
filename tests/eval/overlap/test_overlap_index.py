"""The overlap index: exact search equals numpy brute force, IVF-PQ finds near-duplicates' exact top-1, save/load,
and bad input."""

import numpy as np
import pytest

from eval.overlap.index import IndexConfig, build_index, ivfpq_shape, load_index
from wit_builder.errors import WitError


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((100, d))
    return _unit(centers[rng.integers(0, 100, n)] + 0.5 * rng.standard_normal((n, d)))


def test_exact_equals_numpy_brute_force():
    rng = np.random.default_rng(0)
    train, queries = _unit(rng.standard_normal((3000, 48))), _unit(rng.standard_normal((200, 48)))
    index = build_index(train)
    assert index.kind == "exact" and index.size == 3000
    sims, ids = index.search(queries, k=1)
    brute = queries @ train.T
    assert sims.shape == ids.shape == (200, 1) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids[:, 0], brute.argmax(axis=1))
    np.testing.assert_allclose(sims[:, 0], brute.max(axis=1), atol=1e-5)
    top3 = index.search(queries * 7.0, k=3)[1]  # queries are normalised: scale does not matter
    np.testing.assert_array_equal(top3, np.argsort(-brute, axis=1)[:, :3])


def test_auto_picks_the_kind_by_size():
    x = _clustered(12_000, 16)
    assert build_index(x, config=IndexConfig(exact_max=20_000)).kind == "exact"
    assert build_index(x, config=IndexConfig(exact_max=10_000)).kind == "ivfpq"
    assert ivfpq_shape(400_000_000, 768) == (80_000, 192) and ivfpq_shape(20_000, 64) == (512, 16)


def test_ivfpq_recovers_the_exact_top1_of_near_duplicates(tmp_path):
    train = _clustered(20_000, 64)
    rng = np.random.default_rng(1)
    # contamination is what the index looks for: evaluation images that are slightly altered training images
    queries = _unit(train[rng.integers(0, 20_000, 500)] + 0.01 * rng.standard_normal((500, 64)))
    exact_ids = build_index(train, kind="exact").search(queries)[1][:, 0]
    approx = build_index(train, kind="ivfpq", config=IndexConfig(nprobe=16))
    sims, ids = approx.search(queries)
    agreement = (ids[:, 0] == exact_ids).mean()
    assert agreement >= 0.9  # measured 1.0 (seeds 0 and 1)
    approx.save(str(tmp_path / "idx"))
    again = load_index(str(tmp_path / "idx"))
    assert (again.kind, again.dim, again.size, again.nprobe) == ("ivfpq", 64, 20_000, 16)
    np.testing.assert_array_equal(again.search(queries)[1], ids)


def test_bad_input_is_a_wit_error(tmp_path):
    with pytest.raises(WitError, match="non-empty"):
        build_index(np.zeros((0, 8), dtype=np.float32))
    with pytest.raises(WitError, match="kind"):
        build_index(np.ones((4, 8)), kind="hnsw")
    with pytest.raises(WitError, match="exact"):
        build_index(np.ones((100, 8)), kind="ivfpq")
    index = build_index(np.eye(8))
    with pytest.raises(WitError, match=r"\[n, 8\]"):
        index.search(np.ones((2, 9)))
    with pytest.raises(WitError, match="NaN"):
        index.search(np.full((1, 8), np.nan))
    with pytest.raises(WitError, match="k must"):
        index.search(np.ones((1, 8)), k=9)
    with pytest.raises(WitError, match="no overlap index"):
        load_index(str(tmp_path))


def test_the_benchmark_runs_on_a_small_size(capsys):
    from benchmarks.bench_overlap_index import main

    main(["--sizes", "12000", "--dim", "16", "--queries", "40"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "exact" in lines[1] and "ivfpq" in lines[2]
