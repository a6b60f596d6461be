"""The data core: datasets by name, on-device stores, streamed folders and epoch plans."""

from mixkit.data.core import DataBundle, DataOptions, load_data
from mixkit.data.plan import EpochPlan, shuffled
from mixkit.data.sources import Batch

__all__ = ["Batch", "DataBundle", "DataOptions", "EpochPlan", "load_data", "shuffled"]
