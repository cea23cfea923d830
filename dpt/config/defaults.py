"""Configuration defaults: Dassl's keys plus the CoOp / DPT keys (docs/reference.md 1).

The whole default tree lives here, a comment per key. ``dpt.config.merge.build_config`` merges a run's files and
flags into a copy in Dassl's order and freezes it.
"""
from __future__ import annotations

from yacs.config import CfgNode as CN

_C = CN()

_C.VERSION = 1
# Folder for log.txt, tensorboard/, checkpoints and config.yaml.
_C.OUTPUT_DIR = "./output"
# Folder to resume from (empty: OUTPUT_DIR itself).
_C.RESUME = ""
# < 0: unseeded.
_C.SEED = -1
_C.USE_CUDA = True
# Print trainer/dataset/evaluator names and the dataset table.
_C.VERBOSE = True

_C.INPUT = CN()
_C.INPUT.SIZE = (224, 224)
_C.INPUT.INTERPOLATION = "bilinear"
# Train-time augmentations, by name (see dpt/data/transforms.py).
_C.INPUT.TRANSFORMS = ()
# True: no transform at all (images stay PIL).
_C.INPUT.NO_TRANSFORM = False
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
_C.INPUT.CROP_PADDING = 4
_C.INPUT.RRCROP_SCALE = (0.08, 1.0)
_C.INPUT.CUTOUT_N = 1
_C.INPUT.CUTOUT_LEN = 16
_C.INPUT.GN_MEAN = 0.0
_C.INPUT.GN_STD = 0.15
_C.INPUT.RANDAUGMENT_N = 2
_C.INPUT.RANDAUGMENT_M = 10
_C.INPUT.COLORJITTER_B = 0.4
_C.INPUT.COLORJITTER_C = 0.4
_C.INPUT.COLORJITTER_S = 0.4
_C.INPUT.COLORJITTER_H = 0.1
_C.INPUT.RGS_P = 0.2
_C.INPUT.GB_P = 0.5
_C.INPUT.GB_K = 21

_C.DATASET = CN()
# Parent folder of the dataset folders.
_C.DATASET.ROOT = ""
# Registered dataset name (OxfordPets, EuroSAT, ...).
_C.DATASET.NAME = ""
_C.DATASET.SOURCE_DOMAINS = ()
_C.DATASET.TARGET_DOMAINS = ()
_C.DATASET.NUM_LABELED = -1
# Images per class for training (< 1: the full split).
_C.DATASET.NUM_SHOTS = -1
_C.DATASET.VAL_PERCENT = 0.1
_C.DATASET.STL10_FOLD = -1
_C.DATASET.CIFAR_C_TYPE = ""
_C.DATASET.CIFAR_C_LEVEL = 1
_C.DATASET.ALL_AS_UNLABELED = False
# all / base / new (base = first ceil(n/2) labels).
_C.DATASET.SUBSAMPLE_CLASSES = "all"
# Prompt template with one "{}" for the class name; empty: the dataset's own (dpt/modeling/templates.py;
# ImageFolder and CSV: "a photo of a {}."). A non-empty value replaces it for every dataset.
_C.DATASET.TEMPLATE = ""
# CSV dataset: the file listing path,label (or path,classname) [,split]; relative to DATASET.ROOT.
_C.DATASET.CSV = "labels.csv"

_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
# Augment each train image K times.
_C.DATALOADER.K_TRANSFORMS = 1
# Also return the un-augmented image as img0.
_C.DATALOADER.RETURN_IMG0 = False
# Decode the (few-shot) training images once and keep them in memory, within PRELOAD_MAX_GB.
_C.DATALOADER.PRELOAD_TRAIN = True
_C.DATALOADER.PRELOAD_MAX_GB = 4.0
# Cache the resized + center-cropped test/val images as uint8 on disk (exact same tensors).
_C.DATALOADER.CACHE_TEST = False
# Where the test-image and DPT selector-feature caches go (empty: <dataset folder>/image_cache/).
_C.DATALOADER.CACHE_DIR = ""
_C.DATALOADER.TRAIN_X = CN()
_C.DATALOADER.TRAIN_X.SAMPLER = "RandomSampler"
_C.DATALOADER.TRAIN_X.BATCH_SIZE = 32
_C.DATALOADER.TRAIN_X.N_DOMAIN = 0
_C.DATALOADER.TRAIN_X.N_INS = 16
_C.DATALOADER.TRAIN_U = CN()
_C.DATALOADER.TRAIN_U.SAME_AS_X = True
_C.DATALOADER.TRAIN_U.SAMPLER = "RandomSampler"
_C.DATALOADER.TRAIN_U.BATCH_SIZE = 32
_C.DATALOADER.TRAIN_U.N_DOMAIN = 0
_C.DATALOADER.TRAIN_U.N_INS = 16
_C.DATALOADER.TEST = CN()
_C.DATALOADER.TEST.SAMPLER = "SequentialSampler"
_C.DATALOADER.TEST.BATCH_SIZE = 32

_C.MODEL = CN()
# CoOp: prompt-learner weights to start from.
_C.MODEL.INIT_WEIGHTS = ""
_C.MODEL.BACKBONE = CN()
# OpenAI CLIP name (ViT-B/32, ...), a path to a .pt file, or open_clip:ARCH:PRETRAINED (ARCH an open_clip
# architecture or model-config JSON, PRETRAINED a pretrained tag or a weights file; needs .[open_clip]).
_C.MODEL.BACKBONE.NAME = ""
_C.MODEL.BACKBONE.PRETRAINED = True
_C.MODEL.HEAD = CN()
_C.MODEL.HEAD.NAME = ""
_C.MODEL.HEAD.HIDDEN_LAYERS = ()
_C.MODEL.HEAD.ACTIVATION = "relu"
_C.MODEL.HEAD.BN = True
_C.MODEL.HEAD.DROPOUT = 0.0

_C.OPTIM = CN()
_C.OPTIM.NAME = "adam"
_C.OPTIM.LR = 0.0003
_C.OPTIM.WEIGHT_DECAY = 5e-4
_C.OPTIM.MOMENTUM = 0.9
_C.OPTIM.SGD_DAMPNING = 0
_C.OPTIM.SGD_NESTEROV = False
_C.OPTIM.RMSPROP_ALPHA = 0.99
_C.OPTIM.ADAM_BETA1 = 0.9
_C.OPTIM.ADAM_BETA2 = 0.999
_C.OPTIM.STAGED_LR = False
_C.OPTIM.NEW_LAYERS = ()
_C.OPTIM.BASE_LR_MULT = 0.1
# single_step / multi_step / cosine; stepped once per epoch.
_C.OPTIM.LR_SCHEDULER = "single_step"
_C.OPTIM.STEPSIZE = (-1,)
_C.OPTIM.GAMMA = 0.1
_C.OPTIM.MAX_EPOCH = 10
# > 0 enables warm-up for that many epochs.
_C.OPTIM.WARMUP_EPOCH = -1
# constant / linear.
_C.OPTIM.WARMUP_TYPE = "linear"
_C.OPTIM.WARMUP_CONS_LR = 1e-5
_C.OPTIM.WARMUP_MIN_LR = 1e-5
# Restart the main schedule's count after warm-up.
_C.OPTIM.WARMUP_RECOUNT = True

_C.TRAIN = CN()
# Save every N epochs (<= 0: the last epoch only).
_C.TRAIN.CHECKPOINT_FREQ = 0
# Batches between log lines.
_C.TRAIN.PRINT_FREQ = 10
_C.TRAIN.COUNT_ITER = "train_x"

_C.TEST = CN()
_C.TEST.EVALUATOR = "Classification"
_C.TEST.PER_CLASS_RESULT = False
# Save the confusion matrix to OUTPUT_DIR/cmat.pt.
_C.TEST.COMPUTE_CMAT = False
_C.TEST.NO_TEST = False
_C.TEST.SPLIT = "test"
# last_step / best_val.
_C.TEST.FINAL_MODEL = "last_step"

_C.TRAINER = CN()
_C.TRAINER.NAME = ""

_C.TRAINER.COOP = CN()
# Text context length.
_C.TRAINER.COOP.N_CTX = 16
# Class-specific context.
_C.TRAINER.COOP.CSC = False
# Initial context words, e.g. "a photo of a".
_C.TRAINER.COOP.CTX_INIT = ""
# fp16 / fp32 / amp / bf16; read by every trainer but CoCoOp (TRAINER.COCOOP.PREC). fp16 needs a CUDA GPU:
# without one it runs as fp32 (noted).
_C.TRAINER.COOP.PREC = "fp16"
# end / middle / front.
_C.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"
# KgCoOp's weight W of the knowledge-guidance term (official train.py default 1.0; its scripts pass 8.0).
_C.TRAINER.COOP.W = 1.0

_C.TRAINER.COCOOP = CN()
# Context length of CoCoOp (docs/reference.md 9.1); CTX_INIT words override it.
_C.TRAINER.COCOOP.N_CTX = 16
# Initial context words, e.g. "a photo of a".
_C.TRAINER.COCOOP.CTX_INIT = ""
# CoCoOp's precision (the official trainer reads this key, not TRAINER.COOP.PREC); fp16 runs as fp32 without a
# CUDA GPU.
_C.TRAINER.COCOOP.PREC = "fp16"
# (image, class) prompts per text-encoder chunk: bounds memory of the per-image text features.
_C.TRAINER.COCOOP.CHUNK_SIZE = 1024

# Linear-probe CLIP (CoOp's lpclip, docs/reference.md 9.4): L2 logistic regression on frozen image features.
_C.TRAINER.LINEAR_PROBE = CN()
# Inverse regularisation strengths tried first; the best on the val split starts the bisection.
_C.TRAINER.LINEAR_PROBE.C_GRID = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)
# Bisection steps in log10(C) around the best grid value.
_C.TRAINER.LINEAR_PROBE.SEARCH_STEPS = 8
# L-BFGS iterations of each fit.
_C.TRAINER.LINEAR_PROBE.MAX_ITER = 1000
# The C search uses at most min(DATASET.NUM_SHOTS, SEARCH_VAL_SHOTS) val images per class (lpclip: 4).
_C.TRAINER.LINEAR_PROBE.SEARCH_VAL_SHOTS = 4

# MaPLe (docs/reference.md 10.2): coupled deep prompts; defaults of the official train.py.
_C.TRAINER.MAPLE = CN()
# Prompt tokens per prompted block, shared by both towers.
_C.TRAINER.MAPLE.N_CTX = 2
# Words whose first N_CTX token embeddings initialise the layer-0 text context.
_C.TRAINER.MAPLE.CTX_INIT = "a photo of a"
# fp16 / fp32 / amp / bf16.
_C.TRAINER.MAPLE.PREC = "fp16"
# J: blocks 0..J-1 of both towers get prompts (1 = shallow MaPLe).
_C.TRAINER.MAPLE.PROMPT_DEPTH = 9

# IVLP (docs/reference.md 10.3): independent deep prompts in both towers; defaults of the official train.py.
_C.TRAINER.IVLP = CN()
# Prompt tokens per prompted vision block.
_C.TRAINER.IVLP.N_CTX_VISION = 2
# Prompt tokens per prompted text block.
_C.TRAINER.IVLP.N_CTX_TEXT = 2
# Words whose first N_CTX_TEXT token embeddings initialise the layer-0 text context.
_C.TRAINER.IVLP.CTX_INIT = "a photo of a"
# fp16 / fp32 / amp / bf16.
_C.TRAINER.IVLP.PREC = "fp16"
# Vision blocks 0..PROMPT_DEPTH_VISION-1 get prompts (0: none).
_C.TRAINER.IVLP.PROMPT_DEPTH_VISION = 9
# Text blocks 0..PROMPT_DEPTH_TEXT-1 get prompts (at least 1).
_C.TRAINER.IVLP.PROMPT_DEPTH_TEXT = 9

# PromptSRC (docs/reference.md 10.4): IVLP prompts + self-regularising losses + Gaussian prompt aggregation.
_C.TRAINER.PROMPTSRC = CN()
# Prompt tokens per prompted vision block.
_C.TRAINER.PROMPTSRC.N_CTX_VISION = 4
# Prompt tokens per prompted text block.
_C.TRAINER.PROMPTSRC.N_CTX_TEXT = 4
# Words whose first N_CTX_TEXT token embeddings initialise the layer-0 text context.
_C.TRAINER.PROMPTSRC.CTX_INIT = "a photo of a"
# fp16 / fp32 / amp / bf16.
_C.TRAINER.PROMPTSRC.PREC = "fp16"
# Vision blocks 0..PROMPT_DEPTH_VISION-1 get prompts.
_C.TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION = 9
# Text blocks 0..PROMPT_DEPTH_TEXT-1 get prompts.
_C.TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT = 9
# Weight of the L1 loss between learned and frozen template-ensembled text features (an int, as upstream).
_C.TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT = 25
# Weight of the L1 loss between prompted and frozen image features (an int, as upstream).
_C.TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT = 10
# Mean and std (in epochs, 1-based) of the Gaussian weights of the prompt aggregation (ints, as upstream).
_C.TRAINER.PROMPTSRC.GPA_MEAN = 15
_C.TRAINER.PROMPTSRC.GPA_STD = 1

_C.TRAINER.VPT = CN()
# Deep visual prompt tokens per layer.
_C.TRAINER.VPT.N_CTX = 5
# Defined by the official code but never read (docs/reference.md 7.8 #18).
_C.TRAINER.VPT.LN = False

_C.TRAINER.SELECTED_COVPT = CN()
# K_N: class-aware prompts per CAVPT layer (capped at the class count).
_C.TRAINER.SELECTED_COVPT.CPN = 5

_C.TRAINER.TOPDOWN_SECOVPT = CN()
# First (1-based) layer with CAVPT in the top-down layout; 12 = last ViT-B block only.
_C.TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT = 12
# Defined by the official code but never read (docs/reference.md 7.8 #18).
_C.TRAINER.TOPDOWN_SECOVPT.LR = 0.01

# CAVPT loss weight (alpha).
_C.TRAINER.ALPHA = 1.0

# Hidden constants of the official code and the paper's ablations (docs/reference.md 7.6, 8).
_C.TRAINER.DPT = CN()
# beta: weight of the main CE during guidance.
_C.TRAINER.DPT.BETA = 0.1
# Text prompt optimiser of VLP / DPT (the official code hard-codes 0.002 and 1).
_C.TRAINER.DPT.TEXT_LR = 0.002
_C.TRAINER.DPT.TEXT_WARMUP_EPOCH = 1
# Extra learnable key tokens per CAVPT layer.
_C.TRAINER.DPT.N_KEY_TOKENS = 10
# q/k projection width of the CAVPT attention.
_C.TRAINER.DPT.ATTN_DIM = 32
# Visual warm-up and guidance epochs used instead when DATASET.NAME is ImageNet (< 0: no override).
_C.TRAINER.DPT.IMAGENET_WARMUP_EPOCH = 1
_C.TRAINER.DPT.IMAGENET_GUIDANCE_EPOCHS = 10
# top_down: CAVPT in layers BOTTOMLIMIT..L; bottom_up: CAVPT in layers 1..TOPLIMIT.
_C.TRAINER.DPT.CAVPT_DIRECTION = "top_down"
_C.TRAINER.DPT.TOPLIMIT = 1
# One CAVPT generator shared by all CAVPT layers.
_C.TRAINER.DPT.SHARED_CAVPT = False

_C.PRETRAIN = CN()
# Guidance epochs (general knowledge guidance) of VLP and DPT.
_C.PRETRAIN.C = 30

CHOICES = {
    "TRAINER.COOP.PREC": ("fp16", "fp32", "amp", "bf16"),
    "TRAINER.COCOOP.PREC": ("fp16", "fp32", "amp", "bf16"),
    "TRAINER.COOP.CLASS_TOKEN_POSITION": ("end", "middle", "front"),
    "TRAINER.MAPLE.PREC": ("fp16", "fp32", "amp", "bf16"),
    "TRAINER.IVLP.PREC": ("fp16", "fp32", "amp", "bf16"),
    "TRAINER.PROMPTSRC.PREC": ("fp16", "fp32", "amp", "bf16"),
    "OPTIM.WARMUP_TYPE": ("constant", "linear"),
    "TEST.FINAL_MODEL": ("last_step", "best_val"),
    "DATASET.SUBSAMPLE_CLASSES": ("all", "base", "new"),
    "TRAINER.DPT.CAVPT_DIRECTION": ("top_down", "bottom_up"),
}


def get_cfg_default() -> CN:
    """A fresh, mutable copy of the default configuration."""
    return _C.clone()
