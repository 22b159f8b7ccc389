"""Data: dataset mappers and their samplers, the row sources behind them (arrays, memory-mapped files, torch
Datasets), and the streams the Trainer prepares from them."""
