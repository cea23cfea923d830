"""DPT: VLP + class-aware visual prompts (CAVPT) in the top blocks (docs/reference.md 7.6)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from dpt.compat.weights import CLASS_COUNT
from dpt.modeling.cavpt import ClassAwarePrompts
from dpt.modeling.parts import BlockPrompts
from dpt.modeling.tower_sizes import vision_layers, vision_width
from dpt.registry import TRAINER_REGISTRY
from dpt.trainers.cavpt_layout import (CAVPT, CAVPT_NAMES, cavpt_facts, check_official_layout, empty_visual_prompts,
                                       key_token_norms)
from dpt.trainers.feature_cache import SelectorFeatureCache, split_cache_path
from dpt.trainers.vlp import VLP
from dpt.trainers.vpt import VISUAL_PROMPTS, check_length


def cavpt_loss(layer_logits: List[torch.Tensor], topk: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Mean CE over the rows (sample b, CAVPT layer j, slot k) whose selected class topk[b, k] is the label.

    layer_logits: per CAVPT layer [B, K, n_cls]; topk: [B, K]; label: [B]. The caller skips the term when no
    row qualifies (a mean over zero rows is NaN).
    """
    hit = topk == label[:, None]  # [B, K]
    rows = [logits[hit] for logits in layer_logits]  # each [n_hit, n_cls]
    targets = label[:, None].expand_as(topk)[hit]  # [n_hit]
    return F.cross_entropy(torch.cat(rows).float(), targets.repeat(len(rows)))


@TRAINER_REGISTRY.register()
class DPT(VLP):
    """VLP's keys plus TRAINER.SELECTED_COVPT.CPN, TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT, TRAINER.ALPHA and
    TRAINER.DPT.{N_KEY_TOKENS, ATTN_DIM, CAVPT_DIRECTION, TOPLIMIT, SHARED_CAVPT}."""

    # an official run with BOTTOMLIMIT 1 keeps an empty visual-prompt tensor in a part we do not register
    empty_foreign_parts = (VISUAL_PROMPTS,)
    official_names = {CAVPT: CAVPT_NAMES}

    @classmethod
    def describe_checkpoint(cls, states):
        """VLP's facts; with CAVPT, its sizes and the BOTTOMLIMIT its top-down layout implies."""
        facts = super().describe_checkpoint(states)
        cavpt = cavpt_facts(states.get(CAVPT) or {}, facts.get("visual prompt blocks", 0))
        if cavpt:
            facts.pop("visual prompt blocks", None)
        facts.update({k: v for k, v in cavpt.items() if not (k == CLASS_COUNT and k in facts)})
        return facts

    @classmethod
    def prompt_tokens(cls, states, meta):
        """VLP's visual prompts, then the CAVPT key tokens."""
        visual = super().prompt_tokens(states, meta)
        vpt_blocks = visual[0].tokens.shape[0] if visual else 0
        return visual + key_token_norms(states.get(CAVPT) or {}, meta, vpt_blocks)

    @classmethod
    def official_states(cls, states, meta, config_value):
        """The official layout refuses shared / bottom-up CAVPT and other sizes; BOTTOMLIMIT 1 gets its empty part."""
        facts = cls.describe_checkpoint(states)
        check_official_layout(meta, facts)
        states = dict(states)
        if CAVPT in states and VISUAL_PROMPTS not in states:
            states[VISUAL_PROMPTS] = empty_visual_prompts(facts, config_value)
        return super().official_states(states, meta, config_value)

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        check_length(cfg, "TRAINER.SELECTED_COVPT.CPN")
        check_length(cfg, "TRAINER.DPT.N_KEY_TOKENS")
        if cfg.TRAINER.DPT.ATTN_DIM < 1:
            raise ValueError(f"config key 'TRAINER.DPT.ATTN_DIM': expected >= 1, got {cfg.TRAINER.DPT.ATTN_DIM}")

    @classmethod
    def cavpt_blocks(cls, cfg, n_layers: int) -> range:
        """CAVPT in blocks BOTTOMLIMIT..L (top_down) or 1..TOPLIMIT (bottom_up), 0-based."""
        dpt = cfg.TRAINER.DPT
        if dpt.CAVPT_DIRECTION == "top_down":
            key, limit = "TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT", cfg.TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT
        else:
            key, limit = "TRAINER.DPT.TOPLIMIT", dpt.TOPLIMIT
        if not 1 <= limit <= n_layers:
            raise ValueError(f"config key {key!r}: expected a layer in 1..{n_layers}, got {limit}")
        return range(limit - 1, n_layers) if dpt.CAVPT_DIRECTION == "top_down" else range(limit)

    @classmethod
    def vpt_blocks(cls, cfg, n_layers: int) -> Sequence[int]:
        """VPT-deep in the blocks without CAVPT."""
        cavpt = cls.cavpt_blocks(cfg, n_layers)
        return [i for i in range(n_layers) if i not in cavpt]

    @classmethod
    def vision_parts(cls, cfg, clip_model, classnames) -> Dict[str, BlockPrompts]:
        """VLP's visual prompts + ``cavpt`` (TRAINER.SELECTED_COVPT.CPN, TRAINER.DPT.*)."""
        parts = super().vision_parts(cfg, clip_model, classnames)
        dpt = cfg.TRAINER.DPT
        parts["cavpt"] = ClassAwarePrompts(
            cls.cavpt_blocks(cfg, vision_layers(clip_model)), cfg.TRAINER.SELECTED_COVPT.CPN,
            clip_model.text_projection.shape[1], vision_width(clip_model), len(classnames),
            dpt.N_KEY_TOKENS, dpt.ATTN_DIM, dpt.SHARED_CAVPT,
        )
        return parts

    def checkpoint_meta(self):
        return {
            **super().checkpoint_meta(),
            "cavpt_layers": list(self.model.cavpt.blocks),
            "shared_cavpt": self.model.cavpt.shared,
        }

    def register_visual_parts(self, model) -> None:
        super().register_visual_parts(model)
        self.register_learnable(CAVPT, model.cavpt, self.visual_spec())

    def keys_to_skip_on_load(self, name: str) -> List[str]:
        """The per-layer classifiers are n_cls-way, so a model trained on ImageNet loads on V2/Sketch/A/R."""
        if name == CAVPT:
            return self.model.cavpt.n_cls_dependent_keys()
        return super().keys_to_skip_on_load(name)

    def loss(self, output, label: torch.Tensor) -> torch.Tensor:
        """VLP's loss + ALPHA x CE of the CAVPT classifier rows of the true class (skipped when none)."""
        loss = super().loss(output, label)
        if output.layer_logits and bool((output.topk_indices == label[:, None]).any()):
            loss = loss + self.cfg.TRAINER.ALPHA * cavpt_loss(output.layer_logits, output.topk_indices, label)
        return loss

    # evaluation: the selector's frozen image features of a split are computed once (feature_cache.py)
    _eval_index: Optional[torch.Tensor] = None

    def build_model(self) -> None:
        super().build_model()
        self._selector_caches: Dict[str, SelectorFeatureCache] = {}

    def selector_cache(self, split: str) -> SelectorFeatureCache:
        """The split's cache: in memory for the run, on disk beside the test-image cache (shared by runs)."""
        if split not in self._selector_caches:
            items = self.dm.dataset.val if split == "val" else self.dm.dataset.test
            loader = self.val_loader if split == "val" else self.test_loader
            dataset_dir = self.dm.dataset.dataset_dir or self.output_dir
            path = split_cache_path(self.cfg, "selector", split, self.backbone_id, self.precision,
                                    loader.dataset.transform, items, dataset_dir)
            self._selector_caches[split] = SelectorFeatureCache(len(items), path)
        return self._selector_caches[split]

    def parse_batch_test(self, batch):
        self._eval_index = batch["index"]
        return super().parse_batch_test(batch)

    def model_inference(self, image: torch.Tensor) -> torch.Tensor:
        cache = self.selector_cache(self.eval_split)
        zs_image = cache.lookup(self._eval_index, image, self.model.zero_shot_image_features)  # [B, E]
        return self.model(image, text_features=self._text_features, zs_image_features=zs_image).logits

    def after_test(self) -> None:
        self.selector_cache(self.eval_split).save_if_complete()
        self._eval_index = None
        super().after_test()
