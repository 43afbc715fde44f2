"""trainer.objectives: each objective trains on a tiny model and its loss falls; the bag-of-words targets are exact; the
bag-of-words and caption zero-shot scorers equal a direct computation (a Python loop over words, and a position by
position next-token evaluation); checkpoints of every objective load back by step."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.loop import train_step
from trainer.objectives import (
    OBJECTIVES,
    BowModel,
    CaptionModel,
    bags_of_words,
    bow_loss,
    bow_scores,
    build_loss,
    build_model,
    caption_log_likelihood,
    caption_loss,
    check_objective,
    head_input,
)
from trainer.optim import build_optimizer, cosine_schedule

SOT, EOT = 49406, 49407


def row(words: list[int], context: int = 77) -> list[int]:
    """[SOT] words [EOT] then zero padding."""
    return [SOT, *words, EOT] + [0] * (context - len(words) - 2)


def batch(n: int = 8, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.tensor([row(torch.randint(1, 400, (3 + i % 5,), generator=g).tolist()) for i in range(n)])
    return {"images": torch.randn(n, 3, 64, 64, generator=g), "tokens": tokens}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_each_objective_trains_and_its_loss_falls(objective):
    torch.manual_seed(0)
    model = build_model("tiny-vit", objective)
    assert model.objective == objective and model.image_size == 64 and model.context_length == 77
    optimizer = build_optimizer(model, lr=1e-3)
    scheduler = cosine_schedule(optimizer, warmup_steps=2, total_steps=40)
    data = batch()
    losses = [train_step(model, data, optimizer, scheduler, build_loss(objective))["loss"] for _ in range(12)]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.8 * losses[0], losses
    if objective != "contrastive":  # the generative losses start near log(vocabulary): uniform predictions
        assert losses[0] == pytest.approx(math.log(49408), rel=0.1)


def test_the_same_image_tower_for_every_objective():
    shapes = {o: {k: v.shape for k, v in build_model("tiny-vit", o).visual.state_dict().items()} for o in OBJECTIVES}
    assert shapes["bow"] == shapes["contrastive"] == shapes["caption"]


def test_an_unknown_objective_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown objective 'mlm': choose one of contrastive, bow, caption"):
        check_objective("mlm")


def test_bags_of_words_count_the_words_between_start_and_end():
    tokens = torch.tensor([row([5, 7, 5]), row([]), row([3])])
    bags = bags_of_words(tokens, 10)
    assert bags[0].tolist() == pytest.approx([0, 0, 0, 0, 0, 2 / 3, 0, 1 / 3, 0, 0])
    assert bags[1].sum() == 0  # an empty caption: no target
    assert bags[2].tolist() == [0, 0, 0, 1.0, 0, 0, 0, 0, 0, 0]


def test_bow_loss_skips_empty_captions_and_matches_cross_entropy():
    logits = torch.randn(2, 12, requires_grad=True)
    tokens = torch.tensor([row([4, 9]), row([])], dtype=torch.long)[:, :12]
    tokens[:, 11] = 0
    loss = bow_loss(logits, tokens)
    expected = -(F.log_softmax(logits[0], dim=0)[[4, 9]]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert logits.grad[1].abs().sum() == 0  # the empty caption got no gradient


def test_bow_scores_equal_a_direct_loop():
    torch.manual_seed(3)
    model = BowModel("tiny-vit").eval()
    features = torch.randn(5, 128)
    prompts = torch.tensor([row([11, 12, 11]), row([300]), row([42, 43, 44, 45])])
    scores = bow_scores(model, features, prompts)
    with torch.no_grad():
        probs = torch.softmax(model.bow_head(head_input(features)).double(), dim=-1)
    for i in range(5):
        for k, words in enumerate(([11, 12, 11], [300], [42, 43, 44, 45])):
            direct = sum(math.log(probs[i, w].item()) for w in words) / len(words)
            assert scores[i, k].item() == pytest.approx(direct, rel=1e-5)


def test_caption_log_likelihood_equals_position_by_position_next_token_probabilities():
    torch.manual_seed(4)
    model = CaptionModel("tiny-vit").eval()
    features = torch.randn(3, 128)
    # a template's words before the class name (5, 6) are shared: scored once per image, then each pair from token 3
    words = ([5, 6, 20, 21], [5, 6, 7, 8, 9, 10, 11], [5, 6, 500])
    prompts = torch.tensor([row(w) for w in words])
    scores = caption_log_likelihood(model, features, prompts, chunk=4)  # 9 pairs in chunks of 4: 4 + 4 + 1
    for i in range(3):
        for k, w in enumerate(words):
            sequence = [SOT, *w, EOT]
            total = 0.0
            for t in range(1, len(sequence)):  # p(token t | image, tokens 1..t-1): the image stands for SOT
                with torch.no_grad():
                    x = torch.cat(
                        [
                            model.image_prefix(head_input(features[i : i + 1]))[:, None],
                            model.token_embedding(torch.tensor([sequence[1:t]], dtype=torch.long)),
                        ],
                        dim=1,
                    )
                    h = model.ln_final(model.transformer(x + model.positional_embedding[:t], causal=True))
                    log_probs = F.log_softmax(h[0, -1] @ model.token_embedding.weight.T, dim=-1)
                total += log_probs[sequence[t]].item()
            assert scores[i, k].item() == pytest.approx(total, rel=1e-4, abs=1e-3)


def test_a_prompts_likelihood_does_not_depend_on_the_other_prompts():
    torch.manual_seed(5)
    model = CaptionModel("tiny-vit").eval()
    features = torch.randn(2, 128)
    short, long = row([30]), row(list(range(100, 140)))
    alone = caption_log_likelihood(model, features, torch.tensor([short]))
    together = caption_log_likelihood(model, features, torch.tensor([long, short]))
    assert torch.allclose(alone[:, 0], together[:, 1], atol=1e-4)


def test_caption_forward_scores_every_token_after_the_start_up_to_the_end():
    model = CaptionModel("tiny-vit").eval()
    data = batch(n=3)
    lengths = (data["tokens"].argmax(dim=1)).tolist()  # EOT position = words + 1 = tokens to predict
    with torch.no_grad():
        logits, targets = model(data["images"], data["tokens"])
    assert logits.shape == (sum(lengths), 49408)
    expected = torch.cat([data["tokens"][i, 1 : n + 1] for i, n in enumerate(lengths)])
    assert torch.equal(targets, expected) and int((targets == EOT).sum()) == 3
    assert caption_loss(logits, targets).item() == pytest.approx(math.log(49408), rel=0.1)


def test_generative_heads_predict_over_the_runs_tokenizer(tmp_path):
    from trainer.objectives import tokenizer_vocab_size
    from trainer.tokenizer import train_bpe

    captions = ["a red star on white", "a blue star", "two red circles", "a green tree in the snow"] * 5
    path = tmp_path / "bpe.txt"
    train_bpe(captions, vocab_size=600).save(path)
    vocab = tokenizer_vocab_size(str(path))
    assert tokenizer_vocab_size(None) is None and 514 < vocab <= 600
    assert build_model("tiny-vit", "bow", vocab).bow_head.out_features == vocab
    assert build_model("tiny-vit", "caption", vocab).token_embedding.num_embeddings == vocab
    assert build_model("tiny-vit", "contrastive", vocab).token_embedding.num_embeddings == 49408  # CLIP unchanged
