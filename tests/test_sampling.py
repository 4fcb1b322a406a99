import torch
from dalle.model.sampling import SamplingSettings, filter_logits, sample_image_tokens
from dalle.model.transformer import KVCache

from .conftest import tiny_parts


def _text(tokenizer, prompts):
    return torch.tensor([tokenizer.encode(p).ids for p in prompts])


def test_cached_logits_match_uncached():
    _, model, tokenizer = tiny_parts(seed=1)
    text = _text(tokenizer, ["orange dinosaur in a suit", "一个戴着皇冠的红色猫"])
    image = torch.randint(0, model.config.image_vocab_size, (2, model.config.image_len))
    with torch.no_grad():
        _, full = model(text, image)  # (B, N, V) logits for every image token
        cache = KVCache(model.config, 2, torch.device("cpu"), torch.float32)
        stepped = [model.prefill(text, cache)]
        for index in range(model.config.image_len - 1):
            stepped.append(model.step(image[:, index : index + 1], index, cache))
    assert torch.allclose(torch.stack(stepped, dim=1), full, atol=1e-4)


def test_cached_tokens_match_uncached():
    _, model, tokenizer = tiny_parts(seed=2)
    text = _text(tokenizer, ["green robot wearing a hat", "white cat"])
    empty = torch.tensor(tokenizer.empty())
    settings = SamplingSettings(temperature=1.0, top_k=20, guidance_scale=3.0)
    cached = sample_image_tokens(model, text, empty, [5, 6], settings, use_cache=True)
    uncached = sample_image_tokens(model, text, empty, [5, 6], settings, use_cache=False)
    assert torch.equal(cached, uncached)


def test_same_seed_same_tokens_any_batch_size():
    _, model, tokenizer = tiny_parts(seed=3)
    prompts = ["orange dinosaur in a suit", "blue bird", "pink frog with a crown"]
    empty = torch.tensor(tokenizer.empty())
    settings = SamplingSettings(temperature=1.0, top_p=0.95)
    together = sample_image_tokens(model, _text(tokenizer, prompts), empty, [10, 11, 12], settings)
    alone = sample_image_tokens(model, _text(tokenizer, prompts[1:2]), empty, [11], settings)
    assert torch.equal(together[1], alone[0])


def test_different_seeds_differ():
    _, model, tokenizer = tiny_parts(seed=3)
    text = _text(tokenizer, ["blue bird", "blue bird"])
    tokens = sample_image_tokens(model, text, torch.tensor(tokenizer.empty()), [0, 1], SamplingSettings())
    assert not torch.equal(tokens[0], tokens[1])


def test_pad_embedding_does_not_reach_image():
    _, model, tokenizer = tiny_parts(seed=4)
    text = _text(tokenizer, ["red cat"])
    image = torch.randint(0, model.config.image_vocab_size, (1, model.config.image_len))
    with torch.no_grad():
        before = model(text, image)[1]
        model.text_emb.weight[tokenizer.empty()[1]] += 10.0  # the pad row
        after = model(text, image)[1]
    assert torch.allclose(before, after, atol=1e-5)


def test_top_k_keeps_k_tokens():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = torch.isfinite(filter_logits(logits, top_k=2, top_p=None))
    assert kept.tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(filter_logits(probs.log(), top_k=None, top_p=0.75))
    assert kept.tolist() == [[True, True, False, False]]


def test_top_p_always_keeps_best_token():
    logits = torch.tensor([[0.0, 9.0, 1.0]])
    kept = torch.isfinite(filter_logits(logits, top_k=None, top_p=0.01))
    assert kept.tolist() == [[False, True, False]]


def test_draw_skips_filtered_tokens():
    from dalle.model.sampling import _draw

    logits = torch.tensor([[0.0, 2.0, 1.0, 3.0]]).expand(4, -1)
    uniforms = torch.tensor([0.0, 0.3, 0.7, 1.0 - 1e-7])  # both ends of [0, 1) included
    picks = _draw(logits, SamplingSettings(top_k=2), uniforms)
    assert set(picks.tolist()) <= {1, 3}
    assert picks.tolist()[0] == 1
    assert picks.tolist()[-1] == 3


def test_draw_matches_probabilities():
    from dalle.model.sampling import _draw

    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    n = 20_000
    uniforms = torch.rand(n, generator=torch.Generator().manual_seed(0))
    picks = _draw(probs.log().expand(n, -1), SamplingSettings(temperature=1.0), uniforms)
    shares = torch.bincount(picks, minlength=4).float() / n
    assert shares[1] == 0.0
    assert torch.allclose(shares, probs, atol=0.015)


def test_temperature_zero_is_greedy_and_seed_free():
    _, model, tokenizer = tiny_parts(seed=5)
    text = _text(tokenizer, ["gray bear"])
    empty = torch.tensor(tokenizer.empty())
    settings = SamplingSettings(temperature=0.0, guidance_scale=1.0)
    a = sample_image_tokens(model, text, empty, [0], settings)
    b = sample_image_tokens(model, text, empty, [99], settings)
    assert torch.equal(a, b)


def test_pmi_prefers_tokens_the_prompt_explains():
    from dalle.model.rerank import pmi_scores

    _, model, tokenizer = tiny_parts(seed=6)
    text = _text(tokenizer, ["red cat", "red cat"])
    empty = torch.tensor(tokenizer.empty())
    greedy = sample_image_tokens(model, text[:1], empty, [0], SamplingSettings(temperature=0.0, guidance_scale=5.0))
    noise = torch.randint(0, model.config.image_vocab_size, greedy.shape, generator=torch.Generator().manual_seed(0))
    scores = pmi_scores(model, text, empty, torch.cat([greedy, noise]))
    assert scores.shape == (2,)
    assert scores[0] > scores[1]


def test_reranking_keeps_highest_scoring_candidate(tiny_model_path):
    from dalle.model import TextToImage
    from dalle.model.rerank import candidate_seeds, pmi_scores

    pipe = TextToImage.from_pretrained(tiny_model_path)
    settings = SamplingSettings()
    seeds = candidate_seeds(3, 4)
    text = pipe._encode(["blue bird"] * 4)
    tokens = pipe.sample_tokens(text, seeds, settings)
    scores = pmi_scores(pipe.transformer, text, pipe._empty(), tokens)
    expected = pipe.decode(tokens[int(scores.argmax())].unsqueeze(0))[0]
    chosen = pipe.generate_with_seeds(["blue bird"], [3], settings, candidates=4)[0]
    assert chosen.tobytes() == expected.tobytes()
    assert len(set(scores.tolist())) == 4  # distinct candidates, so the choice is not a tie


def test_one_candidate_equals_plain_sampling(tiny_model_path):
    from dalle.model import TextToImage

    pipe = TextToImage.from_pretrained(tiny_model_path)
    plain = pipe.generate(["pink frog"], seed=5)[0]
    reranked = pipe.generate(["pink frog"], seed=5, candidates=1)[0]
    assert plain.tobytes() == reranked.tobytes()
