"""mixTrain (Krithivasan et al. 2024): fewer inputs per epoch by mixing pairs of samples."""
