"""The loop's parts: the device and compilation (``hardware``), gradient accumulation, the moving average of the weights,
the running metric sums and the signal flag checked between steps."""
