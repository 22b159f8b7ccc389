"""The run directory: run.json and its tie to the checkpoints, the data copy, the checkpoint files and their store."""
