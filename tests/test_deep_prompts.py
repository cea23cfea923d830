"""Deep prompts in both towers (dpt/modeling/deep_prompts.py) and the IVLP / MaPLe / PromptSRC trainers' own rules:
the fixed words of CTX_INIT, depths beyond a tower, config checks and PromptSRC's Gaussian prompt aggregation.
Logits, losses and gradients against the official code: tests/test_official_golden_baselines.py."""
from __future__ import annotations

import pytest
import torch

from dpt.config.merge import setup_cfg
from dpt.demo.tiny_clip import make_tiny_clip
from dpt.engine.build import build_trainer
from dpt.engine.checkpoint import load_checkpoint
from dpt.modeling.backbones.clip_import import clip
from dpt.modeling.deep_prompts import prompted_blocks, word_initialised_context
from dpt.train import build_parser, main
from dpt.trainers.promptsrc import gaussian_weights
from dpt.demo.synthetic import make_dataset
from helpers import REPO, argv

CLASSNAMES = ["cat", "sea urchin"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("data")
    make_dataset(path, "EuroSAT", n_classes=4, n_train=8, n_val=2, n_test=4, seed=3)
    return path


def test_only_the_first_n_words_of_ctx_init_are_learned() -> None:
    model = make_tiny_clip()
    learner = word_initialised_context(model, CLASSNAMES, 2, "a photo of a")
    assert torch.equal(learner.tokenized_prompts, clip.tokenize(["a photo of a cat.", "a photo of a sea urchin."]))
    with torch.no_grad():
        words = model.token_embedding(clip.tokenize("a photo of a"))[0]
    assert torch.equal(learner.ctx, words[1:3])  # "a photo" learned
    assert torch.equal(learner.token_suffix[:, :2], words[3:5].expand(2, -1, -1))  # "of a" fixed
    random = word_initialised_context(model, CLASSNAMES, 3, "")
    assert random.ctx.shape == (3, 64) and random.prompt_prefix == "X X X"


def test_depth_beyond_a_tower_is_one_line_not_a_crash(capsys) -> None:
    assert prompted_blocks(9, 12, "TRAINER.IVLP.PROMPT_DEPTH_VISION") == tuple(range(1, 9))
    assert capsys.readouterr().out == ""
    assert prompted_blocks(9, 2, "TRAINER.IVLP.PROMPT_DEPTH_TEXT") == (1,)
    assert capsys.readouterr().out.splitlines() == [
        "Note: TRAINER.IVLP.PROMPT_DEPTH_TEXT is 9 but the tower has 2 blocks; prompting blocks 0..1"]


@pytest.mark.parametrize("trainer,opts,message", [
    ("IVLP", ("TRAINER.IVLP.N_CTX_TEXT", "0"), "config key 'TRAINER.IVLP.N_CTX_TEXT' is 0: expected an integer >= 1"),
    ("IVLP", ("TRAINER.IVLP.PROMPT_DEPTH_VISION", "-1"),
     "config key 'TRAINER.IVLP.PROMPT_DEPTH_VISION' is -1: expected an integer >= 0"),
    ("MaPLe", ("TRAINER.MAPLE.N_CTX", "5"), "config key 'TRAINER.MAPLE.CTX_INIT' 'a photo of a' has 4 words but "
     "TRAINER.MAPLE.N_CTX is 5: expected at least as many words"),
    ("PromptSRC", ("TRAINER.PROMPTSRC.GPA_STD", "0"), "config key 'TRAINER.PROMPTSRC.GPA_STD' is 0: expected > 0"),
])
def test_bad_keys_are_one_line(trainer, opts, message, root, tiny_clip_path, tmp_path, capsys) -> None:
    assert main(argv(trainer, root, tmp_path, tiny_clip_path, *opts)) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]


def test_gpa_loads_the_gaussian_weighted_prompts_and_checkpoints_the_aggregate(root, tiny_clip_path, tmp_path) -> None:
    opts = ("TRAINER.PROMPTSRC.GPA_MEAN", "3", "OPTIM.MAX_EPOCH", "3", "TRAIN.CHECKPOINT_FREQ", "1")
    trainer = build_trainer(setup_cfg(build_parser().parse_args(
        argv("PromptSRC", root, tmp_path, tiny_clip_path, *opts, epochs=3))))
    holder = trainer._models["VLPromptLearner"]
    clip_before = {k: v.clone() for k, v in trainer.model.clip_model.state_dict().items()}
    for epoch in range(3):  # the prompts hold the value epoch + 1 at the end of each epoch
        with torch.no_grad():
            for p in holder.parameters():
                p.fill_(epoch + 1.0)
        trainer.epoch = epoch
        trainer.after_epoch()
    weights = gaussian_weights(3, 1, 3)
    expected = float((weights * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum())
    assert 2.4 < expected < 2.6  # neither the last epoch's prompts (3) nor their plain mean (2)
    assert all(torch.allclose(p, torch.full_like(p, expected)) for p in holder.parameters())
    first = load_checkpoint(str(tmp_path / "VLPromptLearner" / "model.pth.tar-1"))["state_dict"]
    assert torch.allclose(first["gpa.aggregate"], torch.full_like(first["gpa.aggregate"], float(weights[0])))
    last = load_checkpoint(str(tmp_path / "VLPromptLearner" / "model.pth.tar-3"))["state_dict"]
    assert torch.allclose(last["prompt_learner.ctx"], torch.full_like(last["prompt_learner.ctx"], expected))
    assert all(torch.equal(clip_before[k], v) for k, v in trainer.model.clip_model.state_dict().items())


def test_language_only_ivlp_config_has_no_vision_prompts(root, tiny_clip_path, tmp_path) -> None:
    """The official language-only yaml (N_CTX_VISION 0, PROMPT_DEPTH_VISION 0) builds; only text prompts learn."""
    args = argv("IVLP", root, tmp_path, tiny_clip_path)
    language_only = REPO / "configs/trainers/IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only.yaml"
    args[args.index("--config-file") + 1] = str(language_only)
    trainer = build_trainer(setup_cfg(build_parser().parse_args(args)))
    assert trainer.model.vision_parts == {} and list(trainer.model.text_block_parts) == ["deep_text"]
    assert sorted(name for name, _ in trainer._models["VLPromptLearner"].named_parameters()) == [
        "deep_text.prompts.0", "prompt_learner.ctx"]
    assert trainer.model.prompt_learner.ctx.shape == (4, 64)
