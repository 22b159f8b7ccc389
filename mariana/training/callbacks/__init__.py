"""Callbacks: the hooks stops and recorders receive and their saved states (``hooks``), which value of a metric is
better (``best``), and how the progress bar draws (``progress_display``)."""
