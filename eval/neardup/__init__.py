"""Image near-duplicate detection (paper Appendix C): exact hash, perceptual hash, then a contrastively trained CNN
embedding with a threshold calibrated on held-out transformed copies versus hard negatives."""
