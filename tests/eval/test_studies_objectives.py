"""eval.studies.objectives on hand-made rows: the curves' error bars (binomial with one seed, min..max with several),
the images-seen interpolation, a reading that refuses to rank curves at chance and ranks clear ones with their
efficiency, the summary tables and the plot."""

from __future__ import annotations

import pytest
from PIL import Image

from eval.studies import row, standard_error
from eval.studies.objectives import (
    BALANCED,
    STUDY,
    curves,
    images_to_reach,
    plot_objectives,
    reading,
    summary,
)


def mean_rows(values: dict[str, list[float]], seed: int = 0, n: int = 1000, chance: float = 0.1) -> list[dict]:
    """Task-mean rows at 1,000 / 2,000 / ... images seen, one list of accuracies per objective."""
    return [
        row("mean", STUDY, arm, 1000 * (i + 1), BALANCED, v, seed, n, chance)
        for arm, accs in values.items()
        for i, v in enumerate(accs)
    ]


def test_curves_use_the_binomial_error_with_one_seed_and_the_seed_range_with_several():
    one = curves(mean_rows({"bow": [0.2, 0.3]}))
    se = standard_error(0.3, 1000)
    assert one == {"bow": [(1000.0, 0.2, standard_error(0.2, 1000), standard_error(0.2, 1000)), (2000.0, 0.3, se, se)]}
    several = curves(mean_rows({"bow": [0.2]}, seed=0) + mean_rows({"bow": [0.4]}, seed=1))
    (x, mean, low, high) = several["bow"][0]
    assert (x, mean, low, high) == (1000.0, pytest.approx(0.3), pytest.approx(0.1), pytest.approx(0.1))


def test_images_to_reach_interpolates_between_checkpoints():
    line = [(1000.0, 0.1, 0, 0), (2000.0, 0.3, 0, 0), (3000.0, 0.5, 0, 0)]
    assert images_to_reach(line, 0.4) == pytest.approx(2500.0)
    assert images_to_reach(line, 0.1) == 1000.0
    assert images_to_reach(line, 0.05) == 1000.0  # nothing was measured before the first checkpoint
    assert images_to_reach(line, 0.6) is None


def test_a_reading_at_chance_refuses_to_rank():
    rows = mean_rows({"contrastive": [0.1, 0.105], "bow": [0.1, 0.098], "caption": [0.1, 0.101]})
    text = reading(rows)
    assert text.startswith(
        "Final mean balanced zero-shot top-1: contrastive (CLIP) 10.5%, transformer language model 10.1%"
    )
    assert "No objective is more than two standard errors above chance" in text and "leads" not in text


def test_a_clear_leader_is_ranked_with_its_efficiency():
    rows = mean_rows({"contrastive": [0.2, 0.4, 0.6], "bow": [0.15, 0.2, 0.3], "caption": [0.1, 0.1, 0.1]})
    text = reading(rows)
    assert "2 of 3 objective(s) end more than two standard errors above chance" in text
    assert "contrastive (CLIP) leads bag-of-words prediction by 30.0 points, more than two standard errors" in text
    assert "It reaches bag-of-words prediction's final accuracy after 1,500 images, 2.0x fewer." in text
    assert "leads transformer language model by 50.0 points" in text
    early = reading(mean_rows({"contrastive": [0.5, 0.6], "bow": [0.2, 0.3]}))
    assert (
        "It is past bag-of-words prediction's final accuracy at its first checkpoint (1,000 images), at least 2.0x"
        in (early)
    )


def test_summary_and_plot(tmp_path):
    rows = mean_rows({"contrastive": [0.2, 0.4], "caption": [0.1, 0.2]})
    rows += [row("digits", STUDY, "contrastive", 2000, BALANCED, 0.5, 0, 500, 0.1)]
    text = summary(rows)
    assert "| contrastive | 0 | 2,000 | 40.0 ± 1.5 | 10.0 |" in text
    assert "| objective | seed | digits |" in text and "| contrastive | 0 | 50.0 |" in text
    assert "12x in all" in text and "Reading: " in text
    plot_objectives(rows, str(tmp_path / "objectives.png"))
    with Image.open(tmp_path / "objectives.png") as png:
        assert png.format == "PNG" and png.size == (700, 480)
