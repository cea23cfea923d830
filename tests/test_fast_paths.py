"""Every fast path equals its plain reference path: chunk recomputation of the text encoder, cached zero-shot
(selector) image features, learned text features computed once per evaluation. Values and gradients."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.backbones.loader import backbone_id
from dpt.modeling.prompted_clip import PromptedCLIP
from dpt.modeling.text_encoder import TextEncoder
from dpt.trainers.feature_cache import SelectorFeatureCache, cache_key
from helpers import argv, compose_clip

NAMES = ["cat", "sea lion", "golden retriever dog", "x", "airliner", "a b c d e f"]


def _learned_prompts(model: PromptedCLIP):
    learner = model.prompt_learner
    return learner(), learner.tokenized_prompts


@pytest.mark.parametrize("truncate", [False, True])
def test_recomputed_chunks_match_one_pass_values_and_grads(tiny_clip, truncate) -> None:
    model = compose_clip(tiny_clip, NAMES, "a photo of a {}.", learn_text=True, n_ctx=4)
    model.freeze_clip()
    results = []
    for chunk_size in (len(NAMES), 4, 1):  # one pass (no recompute), uneven chunks, one prompt per chunk
        model.prompt_learner.ctx.grad = None
        encoder = TextEncoder(tiny_clip, truncate=truncate, chunk_size=chunk_size)
        embeds, tokens = _learned_prompts(model)
        features = encoder(embeds, tokens)  # [n_cls, E]
        weights = torch.linspace(-1, 1, features.numel()).view_as(features)
        (features * weights).sum().backward()
        results.append((features.detach(), model.prompt_learner.ctx.grad.clone()))
    reference_features, reference_grad = results[0]
    assert reference_grad.abs().sum() > 0
    for features, grad in results[1:]:
        torch.testing.assert_close(features, reference_features, rtol=0, atol=1e-5)
        torch.testing.assert_close(grad, reference_grad, rtol=1e-4, atol=1e-5)  # chunk sums reorder fp32 adds
    with torch.no_grad():
        plain = tiny_clip.encode_text(clip.tokenize([f"a photo of a {n}." for n in NAMES]))
        chunked = TextEncoder(tiny_clip, truncate=truncate, chunk_size=4).encode_text_tokens(
            clip.tokenize([f"a photo of a {n}." for n in NAMES])
        )
    torch.testing.assert_close(chunked, plain, rtol=0, atol=1e-5)


def _dpt_model(clip_model) -> PromptedCLIP:
    torch.manual_seed(0)
    model = compose_clip(
        clip_model, NAMES, "a photo of a {}.", learn_text=True, n_ctx=4,
        vpt_layers=range(0, 9), n_vpt_ctx=2, cavpt_layers=range(9, 12), n_cavpt=3,
    )
    model.freeze_clip()
    return model


def test_cached_selector_and_text_features_give_same_logits_and_grads(tiny_clip) -> None:
    model = _dpt_model(tiny_clip)
    image = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    learnable = [p for p in model.parameters() if p.requires_grad]

    def run(**kwargs):
        for p in learnable:
            p.grad = None
        out = model(image, need_guidance=True, **kwargs)
        (out.logits.sum() + out.logits_zs_image.sum() + sum(l.square().sum() for l in out.layer_logits)).backward()
        return out, [p.grad.clone() for p in learnable]

    plain, plain_grads = run()
    zs_image = model.zero_shot_image_features(image)  # [B, E], as the cache stores it
    cached, cached_grads = run(zs_image_features=zs_image)
    torch.testing.assert_close(cached.logits, plain.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(cached.logits_zs_image, plain.logits_zs_image, rtol=0, atol=1e-5)
    assert torch.equal(cached.topk_indices, plain.topk_indices)
    for a, b in zip(cached_grads, plain_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)  # grads are O(1); re-normalising moves ulps
    assert all(p.grad is None for p in tiny_clip.parameters())

    with torch.no_grad():  # evaluation: text features once, reused for every batch
        once = model.encode_learned_text()
        torch.testing.assert_close(
            model(image, text_features=once, zs_image_features=zs_image).logits, model(image).logits, rtol=0, atol=1e-5
        )


def test_selector_cache_computes_each_row_once_and_reloads(tmp_path) -> None:
    table = torch.randn(7, 4)
    calls = []

    def compute(image: torch.Tensor) -> torch.Tensor:
        calls.append(image.shape[0])
        return image[:, :4]  # the "image" rows carry their own features here

    path = str(tmp_path / "cache" / "selector.pt")
    cache = SelectorFeatureCache(7, path)
    first = cache.lookup(torch.tensor([0, 1, 2]), table[[0, 1, 2]], compute)
    second = cache.lookup(torch.tensor([2, 3]), table[[2, 3]], compute)
    assert calls == [3, 1] and torch.equal(first, table[[0, 1, 2]]) and torch.equal(second, table[[2, 3]])
    cache.save_if_complete()
    assert not os.path.exists(path)  # incomplete: nothing written
    cache.lookup(torch.tensor([4, 5, 6]), table[[4, 5, 6]], compute)
    cache.save_if_complete()
    reloaded = SelectorFeatureCache(7, path)
    assert reloaded.complete and torch.equal(reloaded.lookup(torch.arange(7), table, compute), table)
    assert calls == [3, 1, 3]
    with pytest.raises(ValueError, match=r"expected \[9, E\]"):
        SelectorFeatureCache(9, path)
    with pytest.raises(IndexError, match="out of range"):
        cache.lookup(torch.tensor([7]), table[:1], compute)


def test_cache_key_follows_images_backbone_and_transform(eurosat_root, tiny_clip_path, tmp_path) -> None:
    from dpt.data.datum import Datum

    images = sorted((eurosat_root).rglob("*.jpg"))[:3]
    items = [Datum(str(p), 0) for p in images]
    key = cache_key("EuroSAT", "test", backbone_id(str(tiny_clip_path)), "fp32", "tfm", items)
    assert key == cache_key("EuroSAT", "test", backbone_id(str(tiny_clip_path)), "fp32", "tfm", items)
    assert backbone_id("ViT-B/32") == "ViT-B/32" and backbone_id(str(tiny_clip_path)).startswith("sha256:")
    assert key != cache_key("EuroSAT", "val", backbone_id(str(tiny_clip_path)), "fp32", "tfm", items)
    assert key != cache_key("EuroSAT", "test", "ViT-B/16", "fp32", "tfm", items)
    assert key != cache_key("EuroSAT", "test", backbone_id(str(tiny_clip_path)), "fp32", "tfm2", items)
    stat = os.stat(images[0])
    os.utime(images[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # an image changed
    assert key != cache_key("EuroSAT", "test", backbone_id(str(tiny_clip_path)), "fp32", "tfm", items)


def test_dpt_eval_with_cache_equals_uncached(eurosat_root, tiny_clip_path, tmp_path) -> None:
    from dpt.config.merge import setup_cfg
    from dpt.engine.build import build_trainer
    from dpt.train import build_parser

    cfg = setup_cfg(build_parser().parse_args(argv("DPT", eurosat_root, tmp_path, tiny_clip_path)))
    trainer = build_trainer(cfg)
    model = trainer.model
    with torch.no_grad():  # make the learned parts non-trivial so CAVPT matters
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    uncached = []
    with torch.no_grad():
        for batch in trainer.test_loader:
            uncached.append(model(batch["img"]).logits)
    uncached = torch.cat(uncached)

    seen = []
    original = trainer.model_inference

    def spy(image):
        logits = original(image)
        seen.append(logits)
        return logits

    trainer.model_inference = spy
    first = trainer.test()
    files = list((Path(trainer.dm.dataset.dataset_dir) / "image_cache").glob("selector_EuroSAT_test_*.pt"))
    assert len(files) == 1
    torch.testing.assert_close(torch.cat(seen), uncached, rtol=0, atol=1e-5)
    cache = trainer.selector_cache("test")
    assert cache.complete and cache.features.shape == (len(trainer.dm.dataset.test), model.zs_text_features.shape[1])

    again = build_trainer(cfg)  # a new run on the same dataset loads the features from disk
    again.model.load_state_dict(model.state_dict())
    assert again.selector_cache("test").saved
    assert again.test() == first


def _bench():
    """benchmarks/bench.py as a module."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench

    return bench


def _tiny_bench_inputs(bench, folder: Path) -> dict:
    from dpt.demo.tiny_clip import save_tiny_clip

    return {"clip": save_tiny_clip(str(folder / "tiny.pt")), "images": bench.write_images(str(folder), 4),
            "resolution": 32, "layers": 12}


def test_bench_kgcoop_row_naive_and_fast_paths_agree(tmp_path):
    """benchmarks/bench.py's KgCoOp row (77-token text every step vs the EOT cut, guidance loss W 8) on a tiny CLIP:
    the two paths give the same train and eval logits and both time a training step."""
    bench = _bench()
    r = bench.compare("KgCoOp", 5, _tiny_bench_inputs(bench, tmp_path), str(tmp_path), 4)
    assert r["train_naive"] > 0 and r["train_fast"] > 0
    assert r["maxdiff"] < 1e-4  # tiny CLIP logits ~ +-100 in fp32


def test_bench_train_step_is_the_trainers_own(tmp_path, monkeypatch):
    """The benchmark's timed step is PromptSRC's ``forward_backward`` (its four loss terms, its optimiser moving
    the prompts), on both paths, and the naive path (77-token text) gives the fast path's logits and losses."""
    from dpt.trainers.promptsrc import PromptSRC

    bench = _bench()
    inputs = _tiny_bench_inputs(bench, tmp_path)
    steps, before = [], {}
    original = PromptSRC.forward_backward

    def spied(self, batch):
        before.setdefault(len(steps), self.model.prompt_learner.ctx.detach().clone())
        steps.append(original(self, batch))
        return steps[-1]

    monkeypatch.setattr(PromptSRC, "forward_backward", spied)
    logged, logits = {}, {}
    for path in ("naive", "fast"):
        steps.clear()
        before.clear()
        spec = dict(inputs, path=path, trainer="PromptSRC", classes=5, batch=4, cache_dir=str(tmp_path / "cache"),
                    logits=str(tmp_path / f"{path}.pt"), warmup=1, steps=1, eval_batches=1)
        assert bench.worker(spec)["train_step"] > 0
        assert len(steps) == 2 and not torch.equal(before[0], before[1])  # warm-up + timed; the SGD step moved ctx
        logged[path], logits[path] = steps[0], torch.load(spec["logits"])
    assert set(logged["fast"]) == {"loss", "acc", "ce", "kl", "l1_text", "l1_image"}
    for key, value in logged["fast"].items():
        assert torch.isfinite(torch.tensor(value)) and value == pytest.approx(logged["naive"][key], rel=1e-4, abs=1e-5)
    for key in ("train", "eval"):
        assert torch.isfinite(logits["fast"][key]).all()
        assert (logits["naive"][key] - logits["fast"][key]).abs().max() < 1e-4
