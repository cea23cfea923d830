"""Config merge order, yacs value semantics and the errors for bad keys and types."""
import argparse
from pathlib import Path

import pytest

from dpt.config import get_cfg_default
from dpt.config.merge import merge_from_file, merge_from_list, save_cfg, setup_cfg
from dpt.train import build_parser

COOP_VIT_B32 = """DATALOADER:
  TRAIN_X:
    BATCH_SIZE: 32
  TEST:
    BATCH_SIZE: 100
  NUM_WORKERS: 8

INPUT:
  SIZE: (224, 224)
  INTERPOLATION: "bicubic"
  PIXEL_MEAN: [0.48145466, 0.4578275, 0.40821073]
  PIXEL_STD: [0.26862954, 0.26130258, 0.27577711]
  TRANSFORMS: ["random_resized_crop", "random_flip", "normalize"]

OPTIM:
  NAME: "sgd"
  LR: 0.002
  MAX_EPOCH: 200
  LR_SCHEDULER: "cosine"
  WARMUP_EPOCH: 1
  WARMUP_TYPE: "constant"
  WARMUP_CONS_LR: 1e-5

TRAIN:
  PRINT_FREQ: 5

MODEL:
  BACKBONE:
    NAME: "ViT-B/32"
"""


def _args(tmp_path, *extra):
    method = tmp_path / "vit_b32.yaml"
    method.write_text(COOP_VIT_B32)
    dataset = tmp_path / "oxford_pets.yaml"
    dataset.write_text('DATASET:\n  NAME: "OxfordPets"\n')
    argv = ["--config-file", str(method), "--dataset-config-file", str(dataset), *extra]
    return build_parser().parse_args(argv)


def test_coop_yaml_loads_with_yacs_semantics(tmp_path):
    cfg = setup_cfg(_args(tmp_path, "--seed", "3", "--trainer", "CoOp", "DATASET.NUM_SHOTS", "16"))
    assert cfg.INPUT.SIZE == (224, 224)  # string "(224, 224)" through literal_eval
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-5 and isinstance(cfg.OPTIM.WARMUP_CONS_LR, float)  # yaml "1e-5" is a str
    assert cfg.DATASET.NAME == "OxfordPets"
    assert cfg.SEED == 3 and cfg.TRAINER.NAME == "CoOp" and cfg.DATASET.NUM_SHOTS == 16
    assert cfg.INPUT.TRANSFORMS == ("random_resized_crop", "random_flip", "normalize")
    assert cfg.is_frozen()


def test_seed_zero_is_ignored_like_coop(tmp_path):
    cfg = setup_cfg(_args(tmp_path, "--seed", "0"))
    assert cfg.SEED == -1


def test_opts_win_over_yaml_and_flags(tmp_path):
    cfg = setup_cfg(_args(tmp_path, "--trainer", "CoOp", "TRAINER.NAME", "DPT", "OPTIM.LR", "0.01"))
    assert cfg.TRAINER.NAME == "DPT" and cfg.OPTIM.LR == 0.01


def test_unknown_key_suggests_the_closest(tmp_path):
    with pytest.raises(KeyError, match=r"OPTIM.MAX_EPOCH"):
        setup_cfg(_args(tmp_path, "OPTIM.MAX_EPOCHS", "3"))


def test_unknown_key_in_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("TRAINER:\n  COOP:\n    NCTX: 4\n")
    with pytest.raises(KeyError, match=r"bad.yaml.*TRAINER.COOP.N_CTX"):
        merge_from_file(get_cfg_default(), str(bad))


@pytest.mark.parametrize("key,value", [("OPTIM.LR", "1"), ("TRAINER.ALPHA", "1"), ("DATASET.NUM_SHOTS", "2.5")])
def test_wrong_type_is_rejected(key, value):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        merge_from_list(get_cfg_default(), [key, value])


def test_bad_choice_and_odd_opts(tmp_path):
    with pytest.raises(ValueError, match="TRAINER.COOP.PREC"):
        setup_cfg(_args(tmp_path, "TRAINER.COOP.PREC", "fp8"))
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        merge_from_list(get_cfg_default(), ["OPTIM.LR"])


def test_saved_config_recreates_the_run(tmp_path):
    cfg = setup_cfg(_args(tmp_path, "OPTIM.LR", "0.01", "TRAINER.COOP.CTX_INIT", "a photo of a"))
    path = tmp_path / "config.yaml"
    save_cfg(cfg, str(path))
    again = setup_cfg(argparse.Namespace(config_file=str(path), dataset_config_file="", opts=[]))
    assert again == cfg


SHIPPED_TRAINER_CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs" / "trainers").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_TRAINER_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_trainer_yaml_merges_into_the_defaults(path):
    """Each yaml under configs/trainers/ names only known keys with the default's types (one bad key fails here)."""
    cfg = get_cfg_default()
    merge_from_file(cfg, str(path))
    assert cfg.INPUT.SIZE == (224, 224) and cfg.OPTIM.MAX_EPOCH > 0


def test_modern_baseline_yamls_carry_their_official_values():
    """Spot checks of the transcribed MaPLe / IVLP / PromptSRC / KgCoOp configs (docs/reference.md 10.2-10.5)."""
    root = Path(__file__).resolve().parent.parent / "configs" / "trainers"
    expected = {
        "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml": {"TRAINER.MAPLE.PROMPT_DEPTH": 9, "OPTIM.LR": 0.0035,
                                                  "OPTIM.MAX_EPOCH": 5, "DATALOADER.TRAIN_X.BATCH_SIZE": 4},
        "MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml": {"TRAINER.MAPLE.PROMPT_DEPTH": 3,
                                                                 "OPTIM.LR": 0.0026, "OPTIM.MAX_EPOCH": 2},
        "IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml": {"TRAINER.IVLP.PROMPT_DEPTH_TEXT": 12,
                                                   "TRAINER.IVLP.PROMPT_DEPTH_VISION": 12, "TRAINER.IVLP.N_CTX_TEXT": 2},
        "IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only.yaml": {"TRAINER.IVLP.PROMPT_DEPTH_VISION": 0,
                                                               "TRAINER.IVLP.N_CTX_TEXT": 4},
        "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml": {"TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT": 25,
                                                         "TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT": 10,
                                                         "TRAINER.PROMPTSRC.GPA_MEAN": 15, "OPTIM.LR": 0.0025},
        "PromptSRC/vit_b16_c2_ep50_batch4_4+4ctx_few_shot.yaml": {"TRAINER.PROMPTSRC.GPA_MEAN": 30,
                                                                  "TRAINER.PROMPTSRC.GPA_STD": 30},
        "KgCoOp/vit_b16_ep100_ctxv1.yaml": {"TRAINER.COOP.CTX_INIT": "a photo of a", "OPTIM.MAX_EPOCH": 100,
                                            "DATALOADER.TRAIN_X.BATCH_SIZE": 128, "TRAINER.COOP.W": 1.0},
    }
    for name, values in expected.items():
        cfg = get_cfg_default()
        merge_from_file(cfg, str(root / name))
        for key, value in values.items():
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert node == value, f"{name} {key}"


def test_modern_baseline_defaults_are_the_official_train_py_defaults():
    cfg = get_cfg_default()
    assert (cfg.TRAINER.MAPLE.N_CTX, cfg.TRAINER.MAPLE.PROMPT_DEPTH, cfg.TRAINER.MAPLE.PREC) == (2, 9, "fp16")
    assert (cfg.TRAINER.IVLP.PROMPT_DEPTH_TEXT, cfg.TRAINER.IVLP.PROMPT_DEPTH_VISION) == (9, 9)
    assert cfg.TRAINER.PROMPTSRC.CTX_INIT == "a photo of a" and cfg.TRAINER.PROMPTSRC.GPA_STD == 1
    assert cfg.TRAINER.COOP.W == 1.0


def test_an_integer_weight_key_rejects_a_float_like_upstream_yacs(tmp_path):
    """TEXT_LOSS_WEIGHT is an int in the official tree, so 2.5 is a type error naming the key, not a silent cast."""
    cfg = get_cfg_default()
    with pytest.raises(ValueError, match=r"TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT.*expected int"):
        merge_from_list(cfg, ["TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT", "2.5"])


@pytest.mark.parametrize("key", ["TRAINER.MAPLE.PREC", "TRAINER.IVLP.PREC", "TRAINER.PROMPTSRC.PREC"])
def test_modern_baseline_precision_is_a_checked_choice(tmp_path, key):
    with pytest.raises(ValueError, match=rf"config key '{key}': expected one of fp16, fp32, amp, bf16, got 'fp8'"):
        setup_cfg(_args(tmp_path, key, "fp8"))
    assert setup_cfg(_args(tmp_path, key, "fp32")).TRAINER[key.split(".")[1]].PREC == "fp32"
