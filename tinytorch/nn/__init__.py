"""`tinytorch.nn`: the layers and losses of modules 03-07 under PyTorch's names.

This file only gathers names; the code lives in the module files (layers.py, networks.py,
spatial.py, attention.py), one file per module. Each name loads its file on first use, so
`tt.nn.Linear` (module 04) works while attention.py (module 07) is still unfinished or broken.
`tinytorch.nn.functional` (import it as F) holds the functional forms.
"""
from tinytorch import _load

_NAMES = {
    "layers": ("GELU", "Dropout", "Flatten", "Identity", "LeakyReLU", "Linear", "LogSoftmax", "Module",
               "ModuleList", "Parameter", "ReLU", "Sequential", "Sigmoid", "Softmax", "Tanh"),
    "networks": ("MLP", "CrossEntropyLoss", "LayerNorm", "MSELoss", "Residual", "count_parameters",
                 "cross_entropy", "init", "layer_norm", "model_bytes", "model_flops", "mse_loss"),
    "spatial": ("AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "GlobalAvgPool2d", "MaxPool2d", "avg_pool2d",
                "batch_norm2d", "conv2d", "max_pool2d"),
    "attention": ("Embedding", "KVCache", "MultiHeadAttention", "PositionalEncoding", "causal_mask",
                  "scaled_dot_product_attention"),
}
_HOME = {name: module for module, names in _NAMES.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name == "functional":              # `tt.nn.functional.relu` works after `import tinytorch`
        import importlib
        return importlib.import_module("tinytorch.nn.functional")
    if name not in _HOME:
        raise AttributeError(f"module 'tinytorch.nn' has no attribute {name!r}")
    value = getattr(_load(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOME))
