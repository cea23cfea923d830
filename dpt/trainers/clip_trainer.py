"""ClipTrainer: loading the frozen CLIP every trainer starts from (prompt trainers and the linear probe).

Why a small base of its own: the linear probe needs CLIP's image tower and the precision, not a prompted
CLIP, so it shares this and nothing of ``PromptTrainer``.
"""
from __future__ import annotations

from dpt.engine.trainer import TrainerX
from dpt.modeling.backbones.loader import backbone_id, image_preprocess, load_clip
from dpt.modeling.backbones.open_clip_adapter import ImagePreprocess


class ClipTrainer(TrainerX):
    """Loads MODEL.BACKBONE.NAME in the trainer's precision (TRAINER.COOP.PREC; CoCoOp overrides the key)."""

    precision_key = "TRAINER.COOP.PREC"

    def build_clip(self):
        """Load MODEL.BACKBONE.NAME onto the device, check the input config against it and record its identity.

        CLIP moves to the device first, so the parts and the zero-shot text features are made there (fp16 is
        GPU-only).
        """
        name = self.cfg.MODEL.BACKBONE.NAME
        print(f"Loading CLIP (backbone: {name})")
        clip_model = load_clip(name, precision=self.precision)
        check_input(self.cfg.INPUT, name, image_preprocess(clip_model))
        self.backbone_id = backbone_id(name)
        return clip_model.to(self.device)

    @classmethod
    def check_layers(cls, cfg, n_layers: int) -> None:
        """Raise ValueError for config keys that do not fit a vision tower of ``n_layers`` blocks (default: none).

        The preflight calls it with the block count read from the weights file, before any model is built.
        """


def check_input(inp, backbone: str, expected: ImagePreprocess) -> None:
    """INPUT.SIZE, and PIXEL_MEAN / PIXEL_STD when normalising, must be what the backbone's weights expect.

    A different interpolation or resize mode only changes the resampling, so it is printed as a note.
    """
    if tuple(inp.SIZE) != tuple(expected.size):
        raise ValueError(f"config key 'INPUT.SIZE' is {tuple(inp.SIZE)} but {backbone} expects {tuple(expected.size)}")
    if "normalize" in inp.TRANSFORMS:
        for key, value in (("PIXEL_MEAN", expected.mean), ("PIXEL_STD", expected.std)):
            given = [float(v) for v in inp[key]]
            if len(given) != len(value) or any(abs(a - b) > 1e-6 for a, b in zip(given, value)):
                spelled = "[" + ",".join(str(v) for v in value) + "]"  # one shell word, for the opts list
                raise ValueError(f"config key 'INPUT.{key}' is {given} but {backbone} expects {list(value)} "
                                 f"(append `INPUT.{key} {spelled}`)")
    if inp.INTERPOLATION != expected.interpolation or expected.resize_mode != "shortest":
        print(f"Note: {backbone} was trained with {expected.interpolation} resizing ({expected.resize_mode} mode); "
              f"this run resizes with INPUT.INTERPOLATION {inp.INTERPOLATION} (shorter side, then center crop)")
