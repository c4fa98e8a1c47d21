"""Do PyTorch's beginner tutorials run on TinyTorch with only the import changed? (issue 15)

Our own code cells, written after reading the official tutorials of pytorch/tutorials (not copied):
"Learn the Basics" (beginner_source/basics), the "60-minute blitz" (beginner_source/blitz) and
"Learning PyTorch with Examples" (beginner_source/examples_*). Each cell uses the API the tutorial's
chunk uses, the way it uses it, with `import tinytorch as torch`. What we replace, and nothing else:
torchvision's data sets by small synthetic image sets (`SmallImages`, learnable: each class is a
noisy copy of its own pattern), its transforms by module 08's (ToFloat for ToTensor, Normalize),
its pretrained models by small models of ours; plotting is left out; training loops are capped.

Every cell checks that its result is RIGHT (a value equal to a NumPy computation, a loss that
decreases, parameters that change, accuracy above chance), so no cell passes with a silently wrong
result. A cell that cannot run is marked with the reason and counted as not running; each tutorial
must run at least 90% of its cells. Run `python tests/test_pytorch_tutorials.py` for the counts.
"""
from __future__ import annotations

import math
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import tinytorch as torch
import tinytorch.nn.functional as F
from tinytorch import nn
from tinytorch.data import Compose, Normalize, ToFloat
from tinytorch.utils.data import DataLoader, Dataset

CELLS: dict[str, list] = {"Learn the Basics": [], "60-minute blitz": [], "Learning PyTorch with Examples": []}
REQUIRED = 0.90


def cell(tutorial: str, name: str, cannot_run: str | None = None):
    """Register a cell of `tutorial`; `cannot_run` says why it is expected to fail (it counts as not running)."""
    def register(fn):
        CELLS[tutorial].append((name, fn, cannot_run))
        return fn
    return register


def close(a, b, tol=1e-5) -> bool:
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=tol, atol=tol))


# ---- stand-ins for torchvision ---------------------------------------------------------------------------
def make_images(n: int, channels: int, side: int, seed: int, classes: int = 10):
    """uint8 images (n, C, side, side) and int64 labels: each class a fixed random pattern plus noise."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(123).random((classes, channels, side, side))
    labels = rng.integers(0, classes, n)
    images = 0.6 * patterns[labels] + 0.4 * rng.random((n, channels, side, side))
    return (images * 255).astype(np.uint8), labels.astype(np.int64)


class SmallImages(Dataset):
    """What `datasets.FashionMNIST(...)` / `datasets.CIFAR10(...)` give: (image Tensor, int label) pairs."""

    def __init__(self, train: bool = True, channels: int = 1, side: int = 28, transform=None,
                 target_transform=None):
        self.images, self.labels = make_images(512 if train else 256, channels, side, seed=0 if train else 1)
        self.transform, self.target_transform = transform, target_transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        image, label = self.images[idx], int(self.labels[idx])
        image = torch.tensor(self.transform(image) if self.transform else image)
        return image, (self.target_transform(label) if self.target_transform else label)


class ToTensor:
    """torchvision's ToTensor for our channels-first uint8 arrays: module 08's ToFloat (scale to [0, 1])."""

    def __call__(self, image):
        return ToFloat()(image)


# ======================================================================================================
# Learn the Basics
# ======================================================================================================
B = types.SimpleNamespace()
BASICS = "Learn the Basics"


@cell(BASICS, "tensors: from data, from NumPy, from another tensor")
def _():
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    x_np = torch.from_numpy(np.array(data))
    x_ones = torch.ones_like(x_data)
    x_rand = torch.rand_like(x_data, dtype=torch.float)
    assert x_data.dtype == torch.int64 and x_np.tolist() == data and x_ones.tolist() == [[1, 1], [1, 1]]
    assert x_rand.dtype == torch.float32 and x_rand.shape == (2, 2) and (x_rand.numpy() < 1).all()
    print(f"Random Tensor: \n {x_rand} \n")


@cell(BASICS, "tensors: random and constant values from a shape tuple")
def _():
    shape = (2, 3,)
    assert torch.rand(shape).shape == shape and torch.ones(shape).sum().item() == 6
    assert torch.zeros(shape).numpy().tolist() == [[0.0] * 3] * 2


@cell(BASICS, "tensors: attributes shape, dtype, device")
def _():
    tensor = torch.rand(3, 4)
    text = f"{tensor.shape} {tensor.dtype} {tensor.device}"
    assert text == "(3, 4) float32 cpu"


@cell(BASICS, "tensors: move to an accelerator if there is one")
def _():
    tensor = torch.ones(2)
    if torch.cuda.is_available() & (torch.device('cuda').index is not None):
        tensor = tensor.to('cuda')
    if torch.accelerator.is_available():
        tensor = tensor.to(torch.accelerator.current_accelerator())
    assert tensor.device == torch.device("cpu")


@cell(BASICS, "tensors: indexing, slicing and assignment")
def _():
    tensor = torch.ones(4, 4)
    assert tensor[0].tolist() == [1.0] * 4 and tensor[:, 0].shape == (4,) and tensor[..., -1].shape == (4,)
    tensor[:, 1] = 0
    assert tensor.sum().item() == 12 and tensor[:, 1].sum().item() == 0
    B.tensor = tensor


@cell(BASICS, "tensors: torch.cat along dim=1")
def _():
    t1 = torch.cat([B.tensor, B.tensor, B.tensor], dim=1)
    assert t1.shape == (4, 12) and close(t1, np.concatenate([B.tensor.numpy()] * 3, axis=1))


@cell(BASICS, "tensors: matrix product three ways (incl. out=)")
def _():
    tensor = B.tensor
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    y3 = torch.rand_like(tensor)
    torch.matmul(tensor, tensor.T, out=y3)
    expected = tensor.numpy() @ tensor.numpy().T
    assert close(y1, expected) and close(y2, expected) and close(y3, expected)


@cell(BASICS, "tensors: element-wise product three ways (incl. out=)")
def _():
    tensor = B.tensor
    z1 = tensor * tensor
    z2 = tensor.mul(tensor)
    z3 = torch.rand_like(tensor)
    torch.mul(tensor, tensor, out=z3)
    assert close(z1, tensor.numpy() ** 2) and close(z2, z1) and close(z3, z1)


@cell(BASICS, "tensors: single-element tensor to a Python number")
def _():
    agg = B.tensor.sum()
    agg_item = agg.item()
    assert isinstance(agg_item, float) and agg_item == 12.0


@cell(BASICS, "tensors: in-place add_")
def _():
    before = B.tensor.numpy().copy()
    B.tensor.add_(5)
    assert close(B.tensor, before + 5)


@cell(BASICS, "tensors: a tensor and its NumPy array share memory")
def _():
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)
    assert n.tolist() == [2.0] * 5


@cell(BASICS, "tensors: from_numpy shares memory")
def _():
    n = np.ones(5)
    t = torch.from_numpy(n)
    np.add(n, 1, out=n)
    assert t.tolist() == [2.0] * 5


@cell(BASICS, "data: index a data set, random sample with randint")
def _():
    B.training_data = SmallImages(train=True, transform=ToTensor())
    B.test_data = SmallImages(train=False, transform=ToTensor())
    labels_map = {i: name for i, name in enumerate("T-Shirt Trouser Pullover Dress Coat Sandal Shirt "
                                                   "Sneaker Bag Boot".split())}
    for _ in range(9):
        sample_idx = torch.randint(len(B.training_data), size=(1,)).item()
        img, label = B.training_data[sample_idx]
        assert labels_map[label] and img.squeeze().shape == (28, 28) and 0 <= img.min().item() <= img.max().item() <= 1


@cell(BASICS, "data: a custom Dataset with transform and target_transform")
def _():
    class CustomImageDataset(Dataset):
        def __init__(self, images, labels, transform=None, target_transform=None):
            self.images, self.img_labels = images, labels
            self.transform, self.target_transform = transform, target_transform

        def __len__(self):
            return len(self.img_labels)

        def __getitem__(self, idx):
            image, label = self.images[idx], int(self.img_labels[idx])
            if self.transform:
                image = self.transform(image)
            if self.target_transform:
                label = self.target_transform(label)
            return image, label

    images, labels = make_images(20, 1, 28, seed=5)
    ds = CustomImageDataset(images, labels, transform=ToTensor(), target_transform=lambda y: y + 100)
    image, label = ds[3]
    assert len(ds) == 20 and label == labels[3] + 100 and np.allclose(image, images[3] / 255.0)


@cell(BASICS, "data: DataLoader batches")
def _():
    B.train_dataloader = DataLoader(B.training_data, batch_size=64, shuffle=True)
    B.test_dataloader = DataLoader(B.test_data, batch_size=64, shuffle=True)
    train_features, train_labels = next(iter(B.train_dataloader))
    assert train_features.size() == (64, 1, 28, 28) and train_labels.size() == (64,)
    img = train_features[0].squeeze()
    label = train_labels[0]
    assert img.shape == (28, 28) and 0 <= int(label) < 10


@cell(BASICS, "transforms: ToTensor and a one-hot Lambda with scatter_")
def _():
    ds = SmallImages(train=True, transform=ToTensor(),
                     target_transform=lambda y: torch.zeros(10, dtype=torch.float).scatter_(0, torch.tensor(y), value=1))
    img, target = ds[0]
    assert img.dtype == torch.float32 and target.tolist() == np.eye(10)[ds.labels[0]].tolist()


@cell(BASICS, "build model: pick the device")
def _():
    B.device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"
    assert B.device == "cpu" and ('cuda' if torch.cuda.is_available() else 'cpu') == "cpu"


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits


@cell(BASICS, "build model: define the class, move it to the device, print it")
def _():
    B.model = NeuralNetwork().to(B.device)
    text = repr(B.model)
    assert "Linear" in text and "ReLU" in text and "Flatten" in text


@cell(BASICS, "build model: predict with Softmax(dim=1) and argmax(1)")
def _():
    X = torch.rand(1, 28, 28, device=B.device)
    logits = B.model(X)
    pred_probab = nn.Softmax(dim=1)(logits)
    y_pred = pred_probab.argmax(1)
    assert logits.shape == (1, 10) and close(pred_probab.sum(1), [1.0])
    assert y_pred.item() == int(np.argmax(logits.numpy()))


@cell(BASICS, "build model: Flatten and Linear on a minibatch")
def _():
    input_image = torch.rand(3, 28, 28)
    assert input_image.size() == (3, 28, 28)
    flatten = nn.Flatten()
    flat_image = flatten(input_image)
    assert flat_image.size() == (3, 784)
    layer1 = nn.Linear(in_features=28 * 28, out_features=20)
    B.hidden1 = layer1(flat_image)
    B.flatten, B.layer1 = flatten, layer1
    assert B.hidden1.size() == (3, 20)
    assert close(B.hidden1, flat_image.numpy() @ layer1.weight.numpy().T + layer1.bias.numpy(), tol=1e-4)


@cell(BASICS, "build model: ReLU")
def _():
    hidden1 = nn.ReLU()(B.hidden1)
    assert close(hidden1, np.maximum(B.hidden1.numpy(), 0))


@cell(BASICS, "build model: Sequential and Softmax")
def _():
    seq_modules = nn.Sequential(B.flatten, B.layer1, nn.ReLU(), nn.Linear(20, 10))
    input_image = torch.rand(3, 28, 28)
    logits = seq_modules(input_image)
    softmax = nn.Softmax(dim=1)
    pred_probab = softmax(logits)
    assert close(pred_probab.sum(dim=1), np.ones(3))


@cell(BASICS, "build model: named_parameters with size() and slices")
def _():
    sizes = {}
    for name, param in B.model.named_parameters():
        text = f"Layer: {name} | Size: {param.size()} | Values : {param[:2]} \n"
        sizes[name] = param.size()
        assert name in text
    assert sizes["linear_relu_stack.0.weight"] == (512, 784) and sizes["linear_relu_stack.4.bias"] == (10,)


@cell(BASICS, "autograd: a one-layer network with binary_cross_entropy_with_logits")
def _():
    B.x = torch.ones(5)
    B.y = torch.zeros(3)
    B.w = torch.randn(5, 3, requires_grad=True)
    B.b = torch.randn(3, requires_grad=True)
    B.z = torch.matmul(B.x, B.w) + B.b
    B.loss = torch.nn.functional.binary_cross_entropy_with_logits(B.z, B.y)
    z = B.x.numpy() @ B.w.numpy() + B.b.numpy()
    assert close(B.loss, np.mean(np.log1p(np.exp(z))))


@cell(BASICS, "autograd: grad_fn of z and loss")
def _():
    assert B.z.grad_fn is not None and B.loss.grad_fn is not None
    print(f"Gradient function for z = {B.z.grad_fn}", f"Gradient function for loss = {B.loss.grad_fn}")


@cell(BASICS, "autograd: loss.backward(), w.grad and b.grad")
def _():
    B.loss.backward()
    z = B.x.numpy() @ B.w.numpy() + B.b.numpy()
    dz = 1 / (1 + np.exp(-z)) / 3                       # d mean(softplus(z)) / dz
    assert close(B.w.grad, np.outer(B.x.numpy(), dz)) and close(B.b.grad, dz)


@cell(BASICS, "autograd: torch.no_grad() stops tracking")
def _():
    z = torch.matmul(B.x, B.w) + B.b
    assert z.requires_grad
    with torch.no_grad():
        z = torch.matmul(B.x, B.w) + B.b
    assert not z.requires_grad


@cell(BASICS, "autograd: detach()")
def _():
    z = torch.matmul(B.x, B.w) + B.b
    z_det = z.detach()
    assert not z_det.requires_grad and close(z_det, z)


@cell(BASICS, "autograd: Jacobian products accumulate, zero_() resets")
def _():
    inp = torch.eye(4, 5, requires_grad=True)
    out = (inp + 1).pow(2).t()
    out.backward(torch.ones_like(out), retain_graph=True)
    first = inp.grad.numpy().copy()
    out.backward(torch.ones_like(out), retain_graph=True)
    second = inp.grad.numpy().copy()
    inp.grad.zero_()
    out.backward(torch.ones_like(out), retain_graph=True)
    assert close(first, 2 * (np.eye(4, 5) + 1)) and close(second, 2 * first) and close(inp.grad, first)


def train_loop(dataloader, model, loss_fn, optimizer, batch_size):
    size = len(dataloader.dataset)
    model.train()
    losses = []
    for batch, (X, y) in enumerate(dataloader):
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss, current = loss.item(), batch * batch_size + len(X)
        assert current <= size
        losses.append(loss)
    return losses


def test_loop(dataloader, model, loss_fn):
    model.eval()
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    test_loss, correct = 0, 0
    with torch.no_grad():
        for X, y in dataloader:
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    return test_loss / num_batches, correct / size


test_loop.__test__ = False  # a tutorial helper, not a pytest test


@cell(BASICS, "optimization: hyperparameters, loss function, optimizer")
def _():
    B.learning_rate, B.batch_size, B.epochs = 1e-1, 64, 3
    B.loss_fn = nn.CrossEntropyLoss()
    B.optimizer = torch.optim.SGD(B.model.parameters(), lr=B.learning_rate)
    assert B.optimizer.param_groups[0]["lr"] == 0.1


@cell(BASICS, "optimization: train and test loops over epochs")
def _():
    train_dataloader = DataLoader(B.training_data, batch_size=B.batch_size)
    test_dataloader = DataLoader(B.test_data, batch_size=B.batch_size)
    loss0, acc0 = test_loop(test_dataloader, B.model, B.loss_fn)
    for t in range(B.epochs):
        losses = train_loop(train_dataloader, B.model, B.loss_fn, B.optimizer, B.batch_size)
    loss1, acc1 = test_loop(test_dataloader, B.model, B.loss_fn)
    assert loss1 < loss0 and acc1 > 0.5 and losses[-1] < losses[0], (loss0, loss1, acc0, acc1)
    B.accuracy = acc1


@cell(BASICS, "save and load: torch.save(model.state_dict())")
def _():
    B.path = str(B.tmp / "model_weights.pth")
    torch.save(B.model.state_dict(), B.path)
    assert Path(B.path).stat().st_size > 784 * 512 * 4


@cell(BASICS, "save and load: load_state_dict(torch.load(..., weights_only=True)), eval()")
def _():
    model = NeuralNetwork()
    model.load_state_dict(torch.load(B.path, weights_only=True))
    model.eval()
    x = torch.rand(2, 1, 28, 28)
    assert close(model(x), B.model(x))


@cell(BASICS, "save and load: torch.save(model), the whole object",
      cannot_run="TinyTorch never pickles objects (a loaded file could run code): save model.state_dict()")
def _():
    torch.save(B.model, str(B.tmp / "model.pth"))


@cell(BASICS, "save and load: torch.load(..., weights_only=False) of a whole model",
      cannot_run="follows from the cell above: there is no pickled model to load")
def _():
    model = torch.load(str(B.tmp / "model.pth"), weights_only=False)
    assert isinstance(model, NeuralNetwork)


@cell(BASICS, "quickstart: look at one batch (shape and dtype)")
def _():
    for X, y in DataLoader(B.test_data, batch_size=64):
        assert X.shape == (64, 1, 28, 28) and y.shape == (64,) and y.dtype == torch.int64
        print(f"Shape of X [N, C, H, W]: {X.shape}", f"Shape of y: {y.shape} {y.dtype}")
        break


@cell(BASICS, "quickstart: model, loss, SGD, train and test for a few epochs")
def _():
    torch.manual_seed(0)
    model = NeuralNetwork().to(B.device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)
    first = None
    for t in range(3):
        losses = train_loop(DataLoader(B.training_data, batch_size=64, shuffle=True), model, loss_fn, optimizer, 64)
        first = losses[0] if first is None else first
    test_loss, correct = test_loop(DataLoader(B.test_data, batch_size=64), model, loss_fn)
    assert losses[-1] < first and correct > 0.5, (first, losses[-1], correct)
    B.quick_model = model


@cell(BASICS, "quickstart: save, load into a new model and predict a class name")
def _():
    torch.save(B.quick_model.state_dict(), str(B.tmp / "model.pth"))
    model = NeuralNetwork().to(B.device)
    model.load_state_dict(torch.load(str(B.tmp / "model.pth"), weights_only=True))
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
    model.eval()
    x, y = B.test_data[0][0], B.test_data[0][1]
    with torch.no_grad():
        x = x.to(B.device)
        pred = model(x)
        predicted, actual = classes[pred[0].argmax(0)], classes[y]
    assert predicted == classes[int(np.argmax(B.quick_model(x).numpy()))] and actual == classes[B.test_data.labels[0]]


# ======================================================================================================
# 60-minute blitz
# ======================================================================================================
Z = types.SimpleNamespace()
BLITZ = "60-minute blitz"


@cell(BLITZ, "tensors: new_ones, randn_like, size()")
def _():
    x = torch.tensor([5.5, 3])
    x = x.new_ones(5, 3, dtype=torch.double)
    assert x.dtype == torch.float64 and x.size() == (5, 3)
    x = torch.randn_like(x, dtype=torch.float)
    assert x.dtype == torch.float32 and x.size()[0] == 5
    Z.x = x


@cell(BLITZ, "tensors: four ways to add (incl. out= and add_)")
def _():
    y = torch.rand(5, 3)
    result = torch.empty(5, 3)
    torch.add(Z.x, y, out=result)
    expected = Z.x.numpy() + y.numpy()
    assert close(Z.x + y, expected) and close(torch.add(Z.x, y), expected) and close(result, expected)
    y.add_(Z.x)
    assert close(y, expected)


@cell(BLITZ, "tensors: slicing, view with -1, item()")
def _():
    assert close(Z.x[:, 1], Z.x.numpy()[:, 1])
    x = torch.randn(4, 4)
    y = x.view(16)
    z = x.view(-1, 8)
    assert (x.size(), y.size(), z.size()) == ((4, 4), (16,), (2, 8))
    one = torch.randn(1)
    assert isinstance(one.item(), float)


@cell(BLITZ, "tensors: ones, ones_like, rand_like, attributes")
def _():
    t = torch.ones(2, 3)
    assert torch.ones_like(t).sum().item() == 6 and torch.rand_like(t).shape == (2, 3)
    assert (t.shape, t.dtype, str(t.device)) == ((2, 3), torch.float32, "cpu")


@cell(BLITZ, "tensors: cat and stack with dim")
def _():
    t = torch.arange(6).view(2, 3)
    assert torch.cat([t, t], dim=0).shape == (4, 3) and torch.stack([t, t], dim=2).shape == (2, 3, 2)


@cell(BLITZ, "tensors: element-wise and matrix products")
def _():
    t = torch.rand(3, 3)
    assert close(t.mul(t), t.numpy() ** 2) and close(t @ t.T, t.numpy() @ t.numpy().T)


@cell(BLITZ, "tensors: NumPy bridge both ways")
def _():
    a = torch.ones(5)
    b = a.numpy()
    a.add_(1)
    assert b.tolist() == [2.0] * 5
    n = np.ones(5)
    t = torch.from_numpy(n)
    np.add(n, 1, out=n)
    assert t.tolist() == [2.0] * 5


@cell(BLITZ, "tensors: CUDA tensors only if available")
def _():
    x = torch.ones(2)
    if torch.cuda.is_available():
        device = torch.device("cuda")
        x = x.to(device)
    assert x.to("cpu", torch.double).dtype == torch.float64


class SmallResNetStandIn(nn.Module):
    """Stands in for torchvision's resnet18 (no pretrained models here): conv features, then `fc`."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(F.relu(self.conv(x))), 1))


@cell(BLITZ, "autograd: forward, backward and an SGD step on a (stand-in) resnet")
def _():
    model = SmallResNetStandIn()
    data = torch.rand(1, 3, 64, 64)
    labels = torch.rand(1, 10)
    prediction = model(data)
    loss = (prediction - labels).sum()
    loss.backward()
    optim = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    before = model.fc.weight.numpy().copy()
    optim.step()
    assert close(model.fc.weight, before - 1e-2 * model.fc.weight.grad.numpy())
    Z.model = model


@cell(BLITZ, "autograd: Q.backward(gradient=...) equals the analytic gradient")
def _():
    a = torch.tensor([2., 3.], requires_grad=True)
    b = torch.tensor([6., 4.], requires_grad=True)
    Q = 3 * a ** 3 - b ** 2
    external_grad = torch.tensor([1., 1.])
    Q.backward(gradient=external_grad)
    assert (9 * a ** 2 == a.grad).all() and (-2 * b == b.grad).all()


@cell(BLITZ, "autograd: requires_grad propagates through ops")
def _():
    x = torch.rand(5, 5)
    y = torch.rand(5, 5)
    z = torch.rand((5, 5), requires_grad=True)
    a = x + y
    b = x + z
    assert not a.requires_grad and b.requires_grad


@cell(BLITZ, "autograd: freeze the network, replace the classifier, fine-tune only it")
def _():
    model = SmallResNetStandIn()  # a fresh "pretrained" model, as the tutorial loads one
    for param in model.parameters():
        param.requires_grad = False
    model.fc = nn.Linear(8, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    conv_before, fc_before = model.conv.weight.numpy().copy(), model.fc.weight.numpy().copy()
    model(torch.rand(2, 3, 16, 16)).sum().backward()
    optimizer.step()
    assert model.conv.weight.grad is None and np.array_equal(model.conv.weight.numpy(), conv_before)
    assert not np.array_equal(model.fc.weight.numpy(), fc_before)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, self.num_flat_features(x))
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def num_flat_features(self, x):
        size = x.size()[1:]
        num_features = 1
        for s in size:
            num_features *= s
        return num_features


@cell(BLITZ, "neural networks: define the LeNet and print it")
def _():
    Z.net = Net()
    assert "Conv2d" in repr(Z.net)


@cell(BLITZ, "neural networks: parameters() and their sizes")
def _():
    params = list(Z.net.parameters())
    assert len(params) == 10 and params[0].size() == (6, 1, 5, 5)


@cell(BLITZ, "neural networks: a random 32x32 input")
def _():
    Z.input = torch.randn(1, 1, 32, 32)
    out = Z.net(Z.input)
    assert out.shape == (1, 10)
    Z.out = out


@cell(BLITZ, "neural networks: zero_grad and backward with a random gradient")
def _():
    Z.net.zero_grad()
    g = torch.randn(1, 10)
    Z.out.backward(g)
    assert close(Z.net.fc3.bias.grad, g.numpy()[0])


@cell(BLITZ, "neural networks: MSELoss against an arange target")
def _():
    output = Z.net(Z.input)
    target = torch.arange(1, 11)
    target = target.view(1, -1)
    criterion = nn.MSELoss()
    Z.loss = criterion(output, target)
    Z.criterion = criterion
    assert close(Z.loss, np.mean((output.numpy() - np.arange(1, 11)) ** 2), tol=1e-4)


@cell(BLITZ, "neural networks: follow loss.grad_fn backwards")
def _():
    first = Z.loss.grad_fn
    second = first.next_functions[0][0]
    third = second.next_functions[0][0]
    assert all(f is not None for f in (first, second, third))
    print(first, second, third)


@cell(BLITZ, "neural networks: conv1.bias.grad before and after backward")
def _():
    Z.net.zero_grad()
    assert Z.net.conv1.bias.grad is None or not Z.net.conv1.bias.grad.numpy().any()
    Z.loss.backward()
    assert Z.net.conv1.bias.grad is not None and Z.net.conv1.bias.grad.numpy().any()


@cell(BLITZ, "neural networks: hand-written SGD through f.data.sub_",
      cannot_run="`.data` is the NumPy array in TinyTorch (no sub_); write `with torch.no_grad(): f -= lr * f.grad`")
def _():
    learning_rate = 0.01
    for f in Z.net.parameters():
        f.data.sub_(f.grad.data * learning_rate)


@cell(BLITZ, "neural networks: the same with torch.optim.SGD")
def _():
    import tinytorch.optim as optim
    optimizer = optim.SGD(Z.net.parameters(), lr=0.01)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        output = Z.net(Z.input)
        loss = Z.criterion(output, torch.arange(1, 11).view(1, -1))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@cell(BLITZ, "CIFAR-10: transforms, data sets, loaders, classes")
def _():
    transform = Compose([ToFloat(), Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    batch_size = 4
    Z.trainset = SmallImages(train=True, channels=3, side=32, transform=transform)
    Z.trainloader = DataLoader(Z.trainset, batch_size=batch_size, shuffle=True, num_workers=2)
    Z.testset = SmallImages(train=False, channels=3, side=32, transform=transform)
    Z.testloader = DataLoader(Z.testset, batch_size=batch_size, shuffle=False, num_workers=2)
    Z.classes = ('plane', 'car', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')
    image, _ = Z.trainset[0]
    assert image.shape == (3, 32, 32) and -1 <= image.min().item() and image.max().item() <= 1


@cell(BLITZ, "CIFAR-10: show a batch (unnormalize, to NumPy, class names)")
def _():
    dataiter = iter(Z.trainloader)
    images, labels = next(dataiter)
    img = images[0] / 2 + 0.5
    npimg = img.numpy()
    picture = np.transpose(npimg, (1, 2, 0))
    names = ' '.join(f'{Z.classes[labels[j]]:5s}' for j in range(4))
    assert picture.shape == (32, 32, 3) and 0 <= picture.min() and picture.max() <= 1 and len(names.split()) == 4


class CifarNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


@cell(BLITZ, "CIFAR-10: the network, CrossEntropyLoss and SGD with momentum")
def _():
    torch.manual_seed(0)
    Z.cnet = CifarNet()
    Z.ccriterion = nn.CrossEntropyLoss()
    Z.coptimizer = torch.optim.SGD(Z.cnet.parameters(), lr=0.01, momentum=0.9)
    assert Z.cnet(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@cell(BLITZ, "CIFAR-10: train for two (capped) epochs")
def _():
    trainloader = DataLoader(Z.trainset, batch_size=16, shuffle=True)
    epoch_losses = []
    for epoch in range(2):
        running_loss = 0.0
        for i, data in enumerate(trainloader, 0):
            inputs, labels = data
            Z.coptimizer.zero_grad()
            outputs = Z.cnet(inputs)
            loss = Z.ccriterion(outputs, labels)
            loss.backward()
            Z.coptimizer.step()
            running_loss += loss.item()
        epoch_losses.append(running_loss / (i + 1))
    assert epoch_losses[1] < epoch_losses[0] < math.log(10) + 0.2, epoch_losses


@cell(BLITZ, "CIFAR-10: save the trained model")
def _():
    Z.PATH = str(B.tmp / "cifar_net.pth")
    torch.save(Z.cnet.state_dict(), Z.PATH)


@cell(BLITZ, "CIFAR-10: reload and predict with torch.max(outputs, 1)")
def _():
    images, labels = next(iter(Z.testloader))
    net = CifarNet()
    net.load_state_dict(torch.load(Z.PATH, weights_only=True))
    outputs = net(images)
    _, predicted = torch.max(outputs, 1)
    names = ' '.join(f'{Z.classes[predicted[j]]:5s}' for j in range(4))
    assert close(outputs, Z.cnet(images)) and predicted.tolist() == Z.cnet(images).numpy().argmax(1).tolist()
    assert len(names.split()) == 4


@cell(BLITZ, "CIFAR-10: accuracy on the test set")
def _():
    correct = 0
    total = 0
    with torch.no_grad():
        for data in Z.testloader:
            images, labels = data
            outputs = Z.cnet(images)
            _, predicted = torch.max(outputs, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    Z.accuracy = correct / total
    assert total == 256 and Z.accuracy > 0.3, Z.accuracy


@cell(BLITZ, "CIFAR-10: accuracy per class")
def _():
    correct_pred = {classname: 0 for classname in Z.classes}
    total_pred = {classname: 0 for classname in Z.classes}
    with torch.no_grad():
        for data in Z.testloader:
            images, labels = data
            outputs = Z.cnet(images)
            _, predictions = torch.max(outputs, 1)
            for label, prediction in zip(labels, predictions):
                if label == prediction:
                    correct_pred[Z.classes[label]] += 1
                total_pred[Z.classes[label]] += 1
    assert sum(total_pred.values()) == 256
    assert sum(correct_pred.values()) / 256 == pytest.approx(Z.accuracy)


@cell(BLITZ, "CIFAR-10: training on a device")
def _():
    device = torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')
    Z.cnet.to(device)
    data = next(iter(Z.trainloader))
    inputs, labels = data[0].to(device), data[1].to(device)
    assert str(device) == "cpu" and inputs is data[0] and labels is data[1]


# ======================================================================================================
# Learning PyTorch with Examples (fit y = sin(x) with a cubic)
# ======================================================================================================
E = types.SimpleNamespace()
EXAMPLES = "Learning PyTorch with Examples"
STEPS = 500  # the tutorials run 2000; the losses below are checked against NumPy for the same steps


@cell(EXAMPLES, "warm-up: NumPy, gradients by hand")
def _():
    x = np.linspace(-math.pi, math.pi, 2000)
    y = np.sin(x)
    rng = np.random.default_rng(0)
    a, b, c, d = rng.standard_normal(4)
    learning_rate = 1e-6
    for t in range(STEPS):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = np.square(y_pred - y).sum()
        if t == 0:
            first = loss
        grad_y_pred = 2.0 * (y_pred - y)
        a, b = a - learning_rate * grad_y_pred.sum(), b - learning_rate * (grad_y_pred * x).sum()
        c, d = c - learning_rate * (grad_y_pred * x ** 2).sum(), d - learning_rate * (grad_y_pred * x ** 3).sum()
    assert loss < first
    E.start = rng


def numpy_fit(a, b, c, d, steps=STEPS, lr=1e-6):
    """The reference: the warm-up's loop in float64 from the given start."""
    x = np.linspace(-math.pi, math.pi, 2000)
    y = np.sin(x)
    for _ in range(steps):
        g = 2.0 * (a + b * x + c * x ** 2 + d * x ** 3 - y)
        a, b, c, d = a - lr * g.sum(), b - lr * (g * x).sum(), c - lr * (g * x ** 2).sum(), d - lr * (g * x ** 3).sum()
    return np.array([a, b, c, d])


@cell(EXAMPLES, "tensors: gradients by hand, in-place updates")
def _():
    dtype = torch.float
    device = torch.device("cpu")
    x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
    y = torch.sin(x)
    torch.manual_seed(1)
    a = torch.randn((), device=device, dtype=dtype)
    b = torch.randn((), device=device, dtype=dtype)
    c = torch.randn((), device=device, dtype=dtype)
    d = torch.randn((), device=device, dtype=dtype)
    start = [v.item() for v in (a, b, c, d)]
    learning_rate = 1e-6
    for t in range(STEPS):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum().item()
        grad_y_pred = 2.0 * (y_pred - y)
        grad_a = grad_y_pred.sum()
        grad_b = (grad_y_pred * x).sum()
        grad_c = (grad_y_pred * x ** 2).sum()
        grad_d = (grad_y_pred * x ** 3).sum()
        a -= learning_rate * grad_a
        b -= learning_rate * grad_b
        c -= learning_rate * grad_c
        d -= learning_rate * grad_d
    got = np.array([a.item(), b.item(), c.item(), d.item()])
    assert np.allclose(got, numpy_fit(*start), rtol=1e-3, atol=1e-4), (got, numpy_fit(*start))
    E.start = start


@cell(EXAMPLES, "autograd: requires_grad, backward, updates under no_grad")
def _():
    dtype = torch.float
    x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype)
    y = torch.sin(x)
    a, b, c, d = (torch.tensor(v, dtype=dtype, requires_grad=True) for v in E.start)
    learning_rate = 1e-6
    for t in range(STEPS):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    got = np.array([a.item(), b.item(), c.item(), d.item()])
    assert np.allclose(got, numpy_fit(*E.start), rtol=1e-3, atol=1e-4), got
    assert a.is_leaf and a.requires_grad


class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


@cell(EXAMPLES, "autograd: a custom autograd Function (Legendre P3)")
def _():
    dtype = torch.float
    device = torch.device("cpu")
    x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
    y = torch.sin(x)
    a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
    c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)
    learning_rate = 5e-6
    losses = []
    for t in range(STEPS):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for p in (a, b, c, d):
                p -= learning_rate * p.grad
                p.grad = None
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


@cell(EXAMPLES, "nn: Sequential(Linear, Flatten(0, 1)) on x.unsqueeze(-1).pow(tensor([1, 2, 3]))")
def _():
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    assert xx.shape == (2000, 3) and close(xx, x.numpy()[:, None] ** np.array([1, 2, 3]), tol=1e-4)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    loss_fn = torch.nn.MSELoss(reduction='sum')
    learning_rate = 1e-6
    losses = []
    for t in range(STEPS):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
    linear_layer = model[0]
    text = (f'Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + '
            f'{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3')
    assert losses[-1] < 0.2 * losses[0] and "Result" in text, (losses[0], losses[-1])
    E.xx, E.y = xx, y


@cell(EXAMPLES, "optim: the same model trained with RMSprop")
def _():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    loss_fn = torch.nn.MSELoss(reduction='sum')
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    losses = []
    for t in range(STEPS):
        loss = loss_fn(model(E.xx), E.y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


class Polynomial3(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

    def string(self):
        return f'y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + {self.d.item()} x^3'


@cell(EXAMPLES, "custom nn.Module with Parameters, MSELoss(sum) and SGD")
def _():
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    torch.manual_seed(1)
    model = Polynomial3()
    start = [model.a.item(), model.b.item(), model.c.item(), model.d.item()]
    criterion = torch.nn.MSELoss(reduction='sum')
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    for t in range(STEPS):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    got = np.array([model.a.item(), model.b.item(), model.c.item(), model.d.item()])
    assert np.allclose(got, numpy_fit(*start), rtol=1e-3, atol=1e-4) and model.string().startswith("y = ")


class DynamicNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))
        self.e = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
        for exp in range(4, random.randint(4, 6)):
            y = y + self.e * x ** exp
        return y


@cell(EXAMPLES, "control flow + weight sharing: a dynamic graph")
def _():
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    random.seed(0)
    torch.manual_seed(0)
    model = DynamicNet()
    criterion = torch.nn.MSELoss(reduction='sum')
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)
    first = None
    for t in range(STEPS):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    with torch.no_grad():  # compare the same graph (four orders) before/after, the random choice aside
        random.seed(1)
        assert criterion(model(x), y).item() < first or loss.item() < first
    # weight sharing: e is used for x^4 and x^5, its gradient is the sum of both uses
    model.zero_grad()
    random.seed(3)
    while True:
        state = random.getstate()
        if random.randint(4, 6) == 6:
            break
    random.setstate(state)
    criterion(model(x), y).backward()
    r = (model(x) - y).numpy()
    assert close(model.e.grad, (2 * r * (x.numpy() ** 4 + x.numpy() ** 5)).sum(), tol=1e-3)


class MyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return input.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad_input[input < 0] = 0
        return grad_input


@cell(EXAMPLES, "custom Function: a ReLU with clone() and masked assignment in backward")
def _():
    x = torch.randn(64, 10)
    w = torch.randn(10, 5, requires_grad=True)
    h = MyReLU.apply(x.mm(w))
    h.sum().backward()
    z = x.numpy() @ w.numpy()
    assert close(h, np.maximum(z, 0), tol=1e-4) and close(w.grad, x.numpy().T @ (z > 0).astype(np.float32), tol=1e-4)


# ---- the harness ------------------------------------------------------------------------------------------
def run_tutorial(tutorial: str, tmp: Path) -> list[tuple[str, str, str]]:
    """Run the cells of `tutorial` in order: [(name, "ok" | "failed" | "cannot run", detail)]."""
    B.tmp = tmp
    torch.manual_seed(0)
    results = []
    for name, fn, cannot_run in CELLS[tutorial]:
        try:
            fn()
        except Exception as exc:  # a cell's failure is a result to report, the next cell still runs
            results.append((name, "cannot run" if cannot_run else "failed",
                            cannot_run or f"{type(exc).__name__}: {exc}"))
        else:
            results.append((name, "ok" if not cannot_run else "failed",
                            "" if not cannot_run else "marked as not running, but it ran: update the mark"))
    return results


def summary(tutorial: str, results) -> str:
    ok = sum(status == "ok" for _, status, _ in results)
    lines = [f"{tutorial}: {ok} of {len(results)} cells run ({ok / len(results):.0%})"]
    lines += [f"    {status}: {name} - {detail}" for name, status, detail in results if status != "ok"]
    return "\n".join(lines)


@pytest.mark.parametrize("tutorial", list(CELLS))
def test_tutorial_runs_with_only_the_import_changed(tutorial, tmp_path, capsys):
    results = run_tutorial(tutorial, tmp_path)
    report = summary(tutorial, results)
    with capsys.disabled():
        print("\n" + report)
    failed = [r for r in results if r[1] == "failed"]
    assert not failed, report
    ok = sum(status == "ok" for _, status, _ in results)
    assert ok / len(results) >= REQUIRED, report


if __name__ == "__main__":
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        reports = [summary(t, run_tutorial(t, Path(folder))) for t in CELLS]
    print("\n".join(reports))
    sys.exit(0)
