// placeholder during development; replaced by the real implementation
