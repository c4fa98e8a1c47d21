"""`tinytorch.vision`: torchvision's `datasets` and `transforms`, over the course's data (given code).

    from tinytorch.vision import datasets, transforms
    train = datasets.MNIST(root="data", train=True, download=True, transform=transforms.ToTensor())

Only what the course has: MNIST and CIFAR-10 (no FashionMNIST, no pretrained models). The images
are channels-first NumPy arrays already, so `ToTensor` only scales uint8 pixels to [0, 1].
"""
from tinytorch.vision import datasets, transforms  # noqa: F401
