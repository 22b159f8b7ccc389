"""The run's settings (``settings``: the Trainer's arguments, frozen), its progress (``progress``: where it stands, what a
checkpoint records of it) and reading a run directory back to resume it (``resume``)."""
