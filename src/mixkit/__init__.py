"""mixkit: cheaper image-classifier training with MixTraining and mixTrain.

Two published methods on one data core, one model core, one training engine and one timing
core, each ending in a speedup report measured against baselines run side by side.
"""

__version__ = "0.1.0"
