"""Configuration: the default tree (Dassl's keys and each method's) and building a run's frozen config from it."""
from dpt.config.defaults import CHOICES, get_cfg_default
from dpt.config.merge import build_config, merge_from_file, merge_from_list, save_cfg, setup_cfg

__all__ = ["CHOICES", "build_config", "get_cfg_default", "merge_from_file", "merge_from_list", "save_cfg", "setup_cfg"]
