"""Weights move between fovea and PyTorch under the same names and shapes.

usage: python scripts/pytorch_interop.py --model mnist-cnn --weights runs/<dir>/best.safetensors \
           [--data data/mnist] [--export torch.safetensors]

Loads fovea's weights into the same network written in PyTorch (strict load_state_dict),
prints its MNIST test accuracy, and with --export writes PyTorch's state_dict back with
safetensors.torch.save_file, for `fovea eval --weights torch.safetensors` to read.
Needs torch and safetensors (e.g. the venv of ../shared/bench/setup.sh); not run by CI.
"""
import argparse
import gzip
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


class MnistCNN(nn.Module):
    """The lecture's net: conv 32 5x5 SAME, pool, conv 64 5x5 SAME, pool, fc 1024, fc 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(7 * 7 * 64, 1024)
        self.fc2 = nn.Linear(1024, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.dropout(F.relu(self.fc1(torch.flatten(x, 1))), 0.5, self.training)
        return self.fc2(x)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["mnist-cnn", "lenet5"], default="mnist-cnn")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--export")
    a = ap.parse_args()

    net = MnistCNN() if a.model == "mnist-cnn" else LeNet5()
    state = {k: v for k, v in load_file(a.weights).items() if not k.startswith("optimizer.")}
    net.load_state_dict(state, strict=True)
    net.eval()

    images = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    labels = torch.from_numpy(read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz")).astype(np.int64))
    x = (torch.from_numpy(images).unsqueeze(1) - 0.1307) / 0.3081
    with torch.no_grad():
        pred = torch.cat([net(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    print(f"pytorch test accuracy {(pred == labels).float().mean().item():.4f} with fovea's weights ({a.weights})")
    if a.export:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, a.export)
        print(f"wrote PyTorch's state_dict to {a.export}")


if __name__ == "__main__":
    main()
