"""Data: Datum, datasets with Dassl's few-shot sampler, transforms and the DataManager."""
from dpt.data.build import build_dataset
from dpt.data.data_manager import DataManager, DatasetWrapper, build_data_loader
from dpt.data.dataset_base import DatasetBase, SplitDataset
from dpt.data.datum import Datum
from dpt.data.fewshot import generate_fewshot_dataset, load_or_create_fewshot
from dpt.data.images import read_image
from dpt.data.splits import subsample_classes
from dpt.data.transforms import build_transform

__all__ = [
    "DataManager",
    "DatasetBase",
    "DatasetWrapper",
    "Datum",
    "SplitDataset",
    "build_data_loader",
    "build_dataset",
    "build_transform",
    "generate_fewshot_dataset",
    "load_or_create_fewshot",
    "read_image",
    "subsample_classes",
]
