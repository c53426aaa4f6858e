"""Logits and gradients of torchvision's resnet18, googlenet and alexnet under pseudo-random
weights, for tests/zoo.rs to compare fovea's models against.

Every value comes from a hash, so the Rust test computes the same numbers and no weight file
needs to be committed: only what this prints. For a tensor named `name` with n values,
    u[i] = uniform in [-1, 1) from splitmix64(fnv1a64(name) ^ (i * 0x9E3779B97F4A7C15)),
           its top 24 bits: u = (z >> 40) / 2^23 - 1
and the state_dict is filled with
    1 + 0.5 u      for running_var and batch-norm scales (1-d `weight`s),
    u sqrt(3 / fan_in)   for conv and linear weights (fan_in = numel / shape[0]),
    0.05 u         for everything else (biases, running means).
The input batch [2, 3, 224, 224] is u("input"), the seed of the backward pass R [2, 1000] is
u("seed"). In evaluation mode the script records the logits, and the gradients of
sum(logits * R) with respect to the input (every 211th value) and to two parameters (the first
convolution's weight and a deeper one, about 500 values of each, evenly spaced).

usage: python scripts/torchvision_logits.py > tests/data/torchvision_logits.json
Needs torch and torchvision (the venv of ../shared/bench/setup.sh, plus
`pip install --no-deps torchvision`); run by hand, not by CI.
"""
import json
import math

import numpy as np
import torch
import torchvision

M64 = (1 << 64) - 1

# The parameters whose gradients are recorded, by model.
GRADS = {
    "resnet18": ["conv1.weight", "layer3.0.conv1.weight"],
    "googlenet": ["conv1.conv.weight", "inception4a.branch2.1.conv.weight"],
    "alexnet": ["features.0.weight", "classifier.1.weight"],
}
INPUT_EVERY, PARAM_SAMPLES = 211, 500


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def uniform(name, n):
    with np.errstate(over="ignore"):
        i = np.arange(n, dtype=np.uint64)
        z = np.uint64(fnv1a64(name)) ^ (i * np.uint64(0x9E3779B97F4A7C15))
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 23) - 1.0


def fill(name, t):
    u = torch.from_numpy(uniform(name, t.numel()))
    if name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
        v = 1 + 0.5 * u
    elif t.dim() >= 2:
        v = u * math.sqrt(3.0 / (t.numel() // t.shape[0]))
    else:
        v = 0.05 * u
    return v.reshape(t.shape).to(t.dtype)


def rounded(values):
    return [float(f"{v:.7g}") for v in values]


def main():
    torch.set_num_threads(2)
    models = {
        "resnet18": torchvision.models.resnet18(weights=None),
        "googlenet": torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False),
        "alexnet": torchvision.models.alexnet(weights=None),
    }
    x0 = torch.from_numpy(uniform("input", 2 * 3 * 224 * 224)).reshape(2, 3, 224, 224).float()
    r = torch.from_numpy(uniform("seed", 2 * 1000)).reshape(2, 1000).float()
    out = {"about": __doc__.split("\n\n")[1], "input_every": INPUT_EVERY, "models": {}}
    for name, m in models.items():
        sd = m.state_dict()
        m.load_state_dict({k: (v if k.endswith("num_batches_tracked") else fill(k, v)) for k, v in sd.items()})
        m.eval()
        x = x0.clone().requires_grad_(True)
        logits = m(x)
        (logits * r).sum().backward()
        params = dict(m.named_parameters())
        grads = {}
        for p in GRADS[name]:
            every = max(1, params[p].numel() // PARAM_SAMPLES)
            grads[p] = {"every": every, "values": rounded(params[p].grad.flatten()[::every].tolist())}
        out["models"][name] = {
            "params": sum(p.numel() for p in m.parameters()),
            "logits": [rounded(row.tolist()) for row in logits.detach()],
            "grad_input": rounded(x.grad.flatten()[::INPUT_EVERY].tolist()),
            "grads": grads,
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
