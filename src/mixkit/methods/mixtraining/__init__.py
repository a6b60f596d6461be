"""MixTraining (Li et al. 2025): SSL -> mix -> SL, one shared forward in the mix phase."""
