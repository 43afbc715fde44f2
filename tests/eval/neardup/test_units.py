"""Transforms, hashes and calibration on small hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageOps
from sklearn.metrics import roc_auc_score

from eval.neardup.augment import TRANSFORMS, augment, augment_named
from eval.neardup.calibrate import (
    calibrate,
    pr_curve,
    precision_at_recall,
    recall_at_precision,
    recall_by_transform,
    validation_pairs,
)
from eval.neardup.detector import (
    REFERENCE_VIEWS,
    VIEWS,
    Signatures,
    best_cosine,
    index_rows,
    match,
    numpy_search,
    pair_similarity,
    sign,
)
from eval.neardup.hashes import hamming, phash, phash_matches, sha256_hex
from eval.neardup.images import decode, encode_png, to_rgb
from eval.neardup.model import thumbnail, whiten_background
from eval.neardup.train import _batch, nearest
from wit_builder.errors import WitError


def drawing(seed: int = 0) -> Image.Image:
    """An asymmetric, colourful RGBA drawing on a transparent background with a gradient, like clip art."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGBA", (120, 90), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.integers(0, 90), rng.integers(0, 60)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3)) + (255,)
        draw.ellipse((x, y, x + rng.integers(10, 40), y + rng.integers(10, 40)), fill=colour)
    for x in range(0, 30):
        draw.line((x, 70, x, 89), fill=(8 * x, 255 - 8 * x, 100, 255))
    return image


def pixels(image: Image.Image) -> tuple:
    return image.size, image.mode, image.tobytes()


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_each_transform_changes_the_image_and_is_seeded(name):
    image = drawing()
    out = TRANSFORMS[name](image, np.random.default_rng(1))
    assert pixels(out) != pixels(image)
    assert pixels(TRANSFORMS[name](image, np.random.default_rng(1))) == pixels(out)
    assert pixels(image) == pixels(drawing())  # the input is not modified


def test_augment_composes_deterministically():
    image = drawing()
    runs = [pixels(augment(image, np.random.default_rng(seed))) for seed in (3, 3, 4)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_augment_named_is_augment_and_its_names_replay_the_copy():
    image = drawing()
    copy, names = augment_named(image, np.random.default_rng(5), (2, 3))
    assert pixels(copy) == pixels(augment(image, np.random.default_rng(5), (2, 3)))
    assert 2 <= len(names) <= 3 and len(set(names)) == len(names) and set(names) <= set(TRANSFORMS)
    replay = np.random.default_rng(5)
    replay.integers(2, 4)  # the draws augment makes before the transforms: how many, then which
    replay.choice(len(TRANSFORMS), size=len(names), replace=False)
    out = image.convert("RGBA")
    for name in names:
        out = TRANSFORMS[name](out, replay)
    assert pixels(out) == pixels(copy)


def test_validation_pairs_record_each_copy_transforms_and_recall_by_transform_counts_them():
    images, groups = [encode_png(drawing(s)) for s in range(6)], ["x", "x", "x", "y", "y", "y"]
    pairs = validation_pairs(images, groups, 12, 8, np.random.default_rng(0))
    assert [bool(t) for t in pairs.transforms] == pairs.labels.tolist()  # every copy has 1-3 names, negatives none
    scores = np.linspace(1, 0, pairs.labels.size)
    threshold = 0.5
    by = recall_by_transform(scores, pairs.labels, pairs.transforms, threshold)
    for name, (n, found) in by.items():
        used = [i for i, t in enumerate(pairs.transforms) if name in t]
        assert n == len(used) and found == sum(scores[i] >= threshold for i in used)
    assert sum(n for n, _ in by.values()) == sum(len(t) for t in pairs.transforms)
    rates = [found / n for n, found in by.values()]
    assert rates == sorted(rates)
    with pytest.raises(WitError):
        recall_by_transform(scores[:-1], pairs.labels, pairs.transforms, threshold)


def test_phash_equal_for_identical_far_for_unrelated():
    a, b = drawing(0), drawing(7)
    assert phash(a) == phash(a.copy()) and 0 <= phash(a) < 2**64
    assert hamming(phash(a), phash(b)) >= 16
    assert hamming(phash(a), phash(a.resize((240, 180)))) <= 4
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_phash_matches_is_the_brute_force_pairs():
    rng = np.random.default_rng(0)
    index = rng.integers(0, 2**63, 50, dtype=np.int64).astype(np.uint64) * 2 + 1
    query = index[[3, 7]] ^ np.array([0b1011, 0], dtype=np.uint64)  # 3 bits off, and exact
    qi, ri, d = phash_matches(query, index, max_distance=3, chunk=1)
    expected = [(q, r, hamming(int(query[q]), int(index[r]))) for q in range(2) for r in range(50)]
    assert list(zip(qi, ri, d, strict=True)) == [e for e in expected if e[2] <= 3]
    assert (0, 3, 3) in list(zip(qi, ri, d, strict=True)) and (1, 7, 0) in list(zip(qi, ri, d, strict=True))


def test_calibrate_matches_a_hand_computation():
    scores = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    labels = np.array([1, 1, 0, 1, 1, 0, 1, 0], dtype=bool)
    # thresholds 0.9: 1/1, 0.8 (tie): 2/3, 0.7: 3/4, 0.6: 4/5, 0.5: 4/6, 0.4: 5/7, 0.3: 5/8; 5 positives
    cal = calibrate(scores, labels, min_precision=0.75)
    assert (cal.threshold, cal.precision, cal.recall) == (0.6, 4 / 5, 4 / 5)
    assert calibrate(scores, labels, min_precision=0.99).threshold == 0.9
    assert calibrate(scores, labels, min_precision=0.99).recall == 1 / 5
    assert cal.auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert recall_at_precision(cal.curve, 0.7) == 1.0 and precision_at_recall(cal.curve, 0.8) == 0.8
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 20, 400) / 20, rng.random(400) < 0.4  # many ties
    assert calibrate(s, y).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_calibrate_degenerate_inputs():
    none_reach = calibrate(np.array([0.9, 0.5]), np.array([False, True]), 0.99)
    assert none_reach.threshold == float("inf") and none_reach.recall == 0.0 and none_reach.auc == 0.0
    tied = calibrate(np.ones(4), np.array([1, 1, 0, 1], dtype=bool), 0.5)
    assert (tied.threshold, tied.precision, tied.recall, tied.auc) == (1.0, 0.75, 1.0, 0.5)
    for scores, labels in [([0.1, 0.2], [1, 1]), ([0.1, 0.2], [0, 0]), ([], []), ([np.nan, 1], [0, 1]), ([1], [0, 1])]:
        with pytest.raises(WitError):
            pr_curve(np.array(scores), np.array(labels))


def test_decode_refuses_without_crashing():
    assert decode(b"not an image")[0] is None
    assert decode(encode_png(drawing()))[0].size == (120, 90)


def test_validation_pairs_leave_out_the_corpus_own_copies_with_an_exact_count():
    a = drawing(0)
    touched = a.copy()
    touched.putpixel((60, 45), (1, 2, 3, 255))
    darker = a.point([min(255, i) for i in range(256)] * 3 + [max(0, i - 1) for i in range(256)])
    same = [encode_png(a), encode_png(a), encode_png(touched), encode_png(darker)]  # 2 byte-identical
    assert len({sha256_hex(x) for x in same}) == 3
    others = [encode_png(drawing(s)) for s in (7, 8, 1, 2)]
    images, groups = same + others, ["x"] * 6 + ["y"] * 2
    pairs = validation_pairs(images, groups, 0, 300, np.random.default_rng(0))
    # group x: 3 distinct copies of one picture, one of them twice -> 5 byte-different same-picture pairs
    assert pairs.left_out == 5
    copies = set(same)
    assert not any(f in copies and s in copies for f, s in zip(pairs.first, pairs.second, strict=True))
    assert sum(f in copies or s in copies for f, s in zip(pairs.first, pairs.second, strict=True)) > 0
    raw = validation_pairs(images, groups, 0, 300, np.random.default_rng(0), same_picture=None)
    assert raw.left_out == 0
    assert any(f in copies and s in copies for f, s in zip(raw.first, raw.second, strict=True))
    with pytest.raises(WitError):
        validation_pairs(same, ["x"] * 4, 0, 10, np.random.default_rng(0))


def test_thumbnail_whitens_a_solid_background_or_frame_and_leaves_busy_edges_alone():
    a = ImageOps.expand(drawing(0), border=20, fill=(0, 0, 0, 0))  # clip art rarely touches its edges
    plain = thumbnail(a, 64).astype(int)
    for name in ("flatten", "border"):
        copy = TRANSFORMS[name](a, np.random.default_rng(2))
        raw = np.asarray(to_rgb(copy).resize((64, 64), Image.BILINEAR), dtype=int)
        thumb = thumbnail(copy, 64).astype(int)
        if name == "flatten":  # what is left is the anti-aliased rim around the drawing
            assert np.abs(thumb - plain).mean() < np.abs(raw - plain).mean() / 10
        else:  # the frame, thinner than a thumbnail pixel, fades to a light rim
            assert (255 - thumb[0]).mean() < (255 - raw[0]).mean() / 2
    flat = TRANSFORMS["flatten"](a, np.random.default_rng(2))
    padded, flat_padded = (TRANSFORMS["pad"](x, np.random.default_rng(3)) for x in (a, flat))  # same margins
    before = np.abs(np.asarray(to_rgb(flat_padded).resize((64, 64), Image.BILINEAR), dtype=int) - thumbnail(padded, 64))
    assert np.abs(thumbnail(flat_padded, 64).astype(int) - thumbnail(padded, 64)).mean() < before.mean() / 10
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(whiten_background(noise), noise)


def test_a_faiss_index_of_index_rows_is_the_best_cosine_over_views():
    import faiss

    rng = np.random.default_rng(0)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    n, v, d = 30, 3, 8
    ok = np.ones(n, bool)
    ok[[4, 17]] = False
    vectors, views = unit(rng.normal(size=(n, d))).astype(np.float32), unit(rng.normal(size=(n, v, d))).astype("f4")
    refs = Signatures(["x"] * n, np.zeros(n, np.uint64), vectors, ok, {}, views)
    rows, owner = index_rows(refs)
    assert rows.shape == ((n - 2) * (1 + v), d) and set(owner) == set(np.nonzero(ok)[0])
    index = faiss.IndexFlatIP(d)
    index.add(rows)
    queries = unit(rng.normal(size=(50, d))).astype(np.float32)
    sims, ids = index.search(queries, 1)
    best, row = numpy_search(vectors, ok, views)(queries)
    assert (owner[ids[:, 0]] == row).all()
    np.testing.assert_allclose(sims[:, 0], best, atol=1e-6)
    plain_rows, plain_owner = index_rows(Signatures(["x"] * n, np.zeros(n, np.uint64), vectors, ok, {}))
    assert (plain_rows == vectors[ok]).all() and (plain_owner == np.nonzero(ok)[0]).all()


def test_hard_batches_hold_whole_neighbour_clusters():
    vectors = np.repeat(np.eye(6, dtype=np.float32), 4, axis=0)  # 6 tight clusters of 4 identical vectors
    neighbours = nearest(vectors, 4)
    assert all(set(row) == set(range(4 * (i // 4), 4 * (i // 4) + 4)) for i, row in enumerate(neighbours.tolist()))
    assert neighbours[:, 0].tolist() == list(range(24))  # each row starts with itself
    idx = _batch(24, 12, neighbours, 0.5, np.random.default_rng(0))
    assert len(set(idx.tolist())) == 12
    assert sum(len(set(range(4 * c, 4 * c + 4)) & set(idx[:6].tolist())) == 4 for c in range(6)) >= 1
    assert len(set(_batch(24, 24, None, 0.5, np.random.default_rng(0)).tolist())) == 24


class PixelEmbedder(torch.nn.Module):
    """The centred thumbnail pixels as the embedding: unlike a random CNN, not near-invariant to mirroring."""

    image_size, embed_dim = 16, 16 * 16 * 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return torch.nn.functional.normalize(flat - flat.mean(dim=1, keepdim=True), dim=1)


def test_reference_views_line_up_a_mirrored_or_cropped_copy():
    model = PixelEmbedder()
    refs_bytes = [encode_png(drawing(0)), encode_png(drawing(7)), b"broken"]
    refs = sign(model, refs_bytes, REFERENCE_VIEWS)
    plain = sign(model, refs_bytes)
    assert refs.views.shape == (3, len(REFERENCE_VIEWS), model.embed_dim) and not refs.views[2].any()
    assert plain.views is None and np.array_equal(plain.vectors, refs.vectors)
    zoomed = VIEWS["zoom80-tr"](drawing(7)).resize((120, 90))
    queries = sign(model, [encode_png(ImageOps.mirror(drawing(0))), encode_png(zoomed), encode_png(drawing(0))])
    multi, single = pair_similarity(refs, queries), pair_similarity(plain, queries)
    print(f"multi-view {multi}, single {single}")
    assert multi[0] > 0.999 and single[0] < 0.5 and multi[1] > 0.95 > single[1] and np.isnan(multi[2])
    # match() searches the views: the mirrored copy is found by the embedding at a threshold the plain vectors miss
    with_views = match(queries, refs, threshold=0.999, phash_distance=-1)
    without = match(queries, plain, threshold=0.999, phash_distance=-1)
    assert (with_views[0].index, with_views[0].tier) == (0, "embedding") and without[0].tier is None
    assert with_views[0].similarity == pytest.approx(float(multi[0]), abs=1e-5)
    # the search is the brute-force best over each reference's vector and views
    cos = best_cosine(queries.vectors, refs.vectors, refs.views)
    brute = np.einsum("md,nvd->mnv", queries.vectors, np.concatenate([refs.vectors[:, None], refs.views], 1))
    assert np.allclose(cos, brute.max(axis=2), atol=1e-6)
    both = Signatures.concat([refs, refs], model.embed_dim)
    assert both.views.shape == (6, len(REFERENCE_VIEWS), model.embed_dim)
    with pytest.raises(ValueError):
        Signatures.concat([refs, plain], model.embed_dim)
    with pytest.raises(ValueError):
        sign(model, refs_bytes, ["sideways"])
