"""`tinytorch.utils.data`: where PyTorch users import data sets and loaders from.

The code is module 08's (tinytorch/data.py); this file only gives it PyTorch's import path:
`from tinytorch.utils.data import DataLoader, Dataset, TensorDataset`.
"""
from tinytorch.data import (DataLoader, Dataset, Subset, TensorDataset, default_collate,  # noqa: F401
                            random_split)
