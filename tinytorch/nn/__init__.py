"""`tinytorch.nn`: the layers and losses of modules 03-07 under PyTorch's names.

This package only gathers names; the code lives in the module files (layers.py, networks.py,
spatial.py, attention.py), one file per module. `tinytorch.nn.functional` (import it as F) holds
the functional forms.
"""
from tinytorch.layers import (GELU, Dropout, Flatten, Identity, LeakyReLU, Linear, LogSoftmax, Module,
                              ModuleList, Parameter, ReLU, Sequential, Sigmoid, Softmax, Tanh)
from tinytorch.networks import (MLP, CrossEntropyLoss, LayerNorm, MSELoss, Residual, count_parameters,
                                cross_entropy, init, layer_norm, model_bytes, model_flops, mse_loss)
from tinytorch.spatial import (AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, GlobalAvgPool2d, MaxPool2d,
                               avg_pool2d, batch_norm2d, conv2d, max_pool2d)
from tinytorch.attention import (Embedding, KVCache, MultiHeadAttention, PositionalEncoding, causal_mask,
                                 scaled_dot_product_attention)
from tinytorch.nn import functional  # noqa: E402  (so `tt.nn.functional.relu` works after `import tinytorch`)
