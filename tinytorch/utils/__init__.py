"""`tinytorch.utils`: PyTorch's `torch.utils` namespace (only `data` exists)."""
from tinytorch.utils import data  # noqa: F401
