"""Precision policies: the float types of the weights and of the forward pass (``policy``)."""
