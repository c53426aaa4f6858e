"""Logits of torchvision's resnet18, googlenet and alexnet with closed-form weights, for
tests/zoo.rs to compare fovea's models against.

Every tensor of a model's state_dict is filled from its name and flat index i:
    k = sum of the name's bytes mod 97
    value[i] = 1 + 0.5 * sin(0.7 * i + k)        for running_var (it must stay positive) and
                                                 for batch-norm scales (1-d `weight`s), so the
                                                 signal neither dies nor explodes
    value[i] = (sin(0.7 * i + k) + 0.5 * sin(0.011 * i + k)) / sqrt(fan_in)   for conv and linear
                                                 weights (fan_in = numel / shape[0])
    value[i] = 0.02 * sin(0.7 * i + k)            for everything else (biases, running means)
(the slow second term gives filters a non-zero mean, so the output depends on the input) and
the input batch [2, 3, 224, 224] is x[i] = sin(0.37 * i) + sin(0.0013 * i). The Rust test computes the same
numbers, so no weight file needs to be committed: only the logits this prints.

usage: python scripts/torchvision_logits.py > tests/data/torchvision_logits.json
Needs torch and torchvision; run by hand, not by CI.
"""
import json
import math

import torch
import torchvision


def fill(name, t):
    k = sum(name.encode()) % 97
    i = torch.arange(t.numel(), dtype=torch.float64)
    if name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
        v = 1 + 0.5 * torch.sin(0.7 * i + k)
    elif t.dim() >= 2:
        fan_in = t.numel() // t.shape[0]
        v = (torch.sin(0.7 * i + k) + 0.5 * torch.sin(0.011 * i + k)) / math.sqrt(fan_in)
    else:
        v = 0.02 * torch.sin(0.7 * i + k)
    return v.reshape(t.shape).to(t.dtype)


def main():
    torch.set_num_threads(2)
    models = {
        "resnet18": torchvision.models.resnet18(weights=None),
        "googlenet": torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=False),
        "alexnet": torchvision.models.alexnet(weights=None),
    }
    n = 2 * 3 * 224 * 224
    i = torch.arange(n, dtype=torch.float64)
    x = (torch.sin(0.37 * i) + torch.sin(0.0013 * i)).reshape(2, 3, 224, 224).float()
    out = {"input": "x[i] = sin(0.37 * i) + sin(0.0013 * i), shape [2, 3, 224, 224]", "models": {}}
    for name, m in models.items():
        sd = m.state_dict()
        m.load_state_dict({k: (v if k.endswith("num_batches_tracked") else fill(k, v)) for k, v in sd.items()})
        m.eval()
        with torch.no_grad():
            logits = m(x)
        out["models"][name] = {
            "params": sum(p.numel() for p in m.parameters()),
            "logits": [[round(float(v), 7) for v in row] for row in logits],
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
