"""torchvision-shaped datasets and transforms over the course's real MNIST / CIFAR-10 files.

Needs the data (set TINYTORCH_DATA to the folder with mnist.npz and cifar10.npz); skipped otherwise,
like the real-file tests of test_datasets.py.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import tinytorch as torch
from tinytorch import nn
from tinytorch.utils.data import DataLoader, Subset
from tinytorch.vision import datasets, transforms

pytestmark = pytest.mark.skipif(not os.environ.get("TINYTORCH_DATA"), reason="TINYTORCH_DATA is not set")


def one_hot(y):
    return torch.zeros(10, dtype=torch.float).scatter_(0, torch.tensor(y), value=1)


def test_mnist_items_and_batches_match():
    ds = datasets.MNIST(root=None, train=False, download=False, transform=transforms.ToTensor(),
                        target_transform=transforms.Lambda(one_hot))
    assert len(ds) == 10000 and ds.data.shape == (10000, 1, 28, 28) and ds.targets.dtype == np.int64
    image, target = ds[5]
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32 and image.shape == (1, 28, 28)
    np.testing.assert_allclose(image.numpy(), ds.data[5] / 255.0, rtol=1e-6)
    assert target.tolist() == np.eye(10)[ds.targets[5]].tolist()
    indices = np.array([3, 0, 9999])
    x, y = next(iter(DataLoader(Subset(ds, indices), batch_size=3)))
    np.testing.assert_array_equal(x.numpy(), np.stack([ds[int(i)][0].numpy() for i in indices]))
    np.testing.assert_array_equal(y.numpy(), np.stack([ds[int(i)][1].numpy() for i in indices]))
    raw_image, raw_label = datasets.MNIST(train=False, download=False)[5]
    assert raw_image.dtype == np.uint8 and isinstance(raw_label, int)


def test_cifar10_with_compose_and_normalize():
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    ds = datasets.CIFAR10(train=False, download=False, transform=transform)
    assert len(ds) == 10000 and ds.classes[0] == "airplane"
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and 0 <= label < 10
    np.testing.assert_allclose(image.numpy(), ds.data[0] / 255.0 * 2 - 1, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="function"):
        transforms.Lambda(3)


def test_the_quickstart_loop_learns_mnist():
    """The Learn-the-Basics loop on 3000 real training digits: test accuracy well above chance."""
    torch.manual_seed(0)
    train = Subset(datasets.MNIST(train=True, download=False, transform=transforms.ToTensor()), np.arange(3000))
    test = Subset(datasets.MNIST(train=False, download=False, transform=transforms.ToTensor()), np.arange(1000))
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 128), nn.ReLU(), nn.Linear(128, 10))
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        for X, y in DataLoader(train, batch_size=64, shuffle=True):
            loss = loss_fn(model(X), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    correct = 0
    with torch.no_grad():
        for X, y in DataLoader(test, batch_size=250):
            correct += (model(X).argmax(1) == y).type(torch.float).sum().item()
    assert correct / 1000 > 0.8, correct
