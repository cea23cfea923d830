"""Config merge order, yacs value semantics and the errors for bad keys and types."""
import argparse

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


def test_template_of_only_the_class_name_is_a_string(tmp_path):
    cfg = setup_cfg(_args(tmp_path, "DATASET.TEMPLATE", "{}"))
    assert cfg.DATASET.TEMPLATE == "{}"  # yacs' literal_eval would make it an empty dict
    path = tmp_path / "config.yaml"
    save_cfg(cfg, str(path))
    again = setup_cfg(argparse.Namespace(config_file=str(path), dataset_config_file="", opts=[]))
    assert again.DATASET.TEMPLATE == "{}"
    assert setup_cfg(_args(tmp_path, "DATASET.TEMPLATE", "'{}.'")).DATASET.TEMPLATE == "{}."  # quotes still stripped
