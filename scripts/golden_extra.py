"""Reference cases that ../shared/golden does not hold, computed by PyTorch in float64 and
stored as float32 in tests/data/golden/ (schema: tests/data/golden/SCHEMA.md):

- optim_*: a few steps of torch.optim.SGD (momentum, Nesterov, weight decay), Adam with
  weight decay and AdamW, on fixed gradients;
- cam_lenet5: Grad-CAM at relu2 and relu1 and occlusion sensitivity on the LeNet-5 and image of
  viz_lenet5.

usage: python scripts/golden_extra.py   (the venv of ../shared/bench/setup.sh has what it needs)
"""
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "golden")
torch.set_default_dtype(torch.float64)


def save(name, tensors, op, params):
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}
    save_file(tensors, os.path.join(OUT, name + ".safetensors"), metadata={"op": op, "params": json.dumps(params, sort_keys=True)})
    print("wrote", name)


def optim_case(name, kind, steps=5, lr=0.1, **opts):
    g = torch.Generator().manual_seed(len(name))
    p = torch.nn.Parameter(torch.rand(3, 4, generator=g) * 2 - 1)
    tensors = {"param": p.detach().clone()}
    if kind == "sgd":
        opt = torch.optim.SGD([p], lr=lr, momentum=opts.get("momentum", 0.0), nesterov=opts.get("nesterov", False), weight_decay=opts.get("weight_decay", 0.0))
    elif kind == "adam":
        opt = torch.optim.Adam([p], lr=lr, weight_decay=opts.get("weight_decay", 0.0))
    else:
        opt = torch.optim.AdamW([p], lr=lr, weight_decay=opts.get("weight_decay", 0.0))
    for t in range(steps):
        grad = torch.rand(3, 4, generator=g) * 2 - 1
        tensors[f"grad.{t}"] = grad.clone()
        p.grad = grad
        opt.step()
        tensors[f"param.{t + 1}"] = p.detach().clone()
    params = {"kind": kind, "lr": lr, "steps": steps, "momentum": opts.get("momentum", 0.0), "nesterov": opts.get("nesterov", False), "weight_decay": opts.get("weight_decay", 0.0)}
    save(name, tensors, "optimizer", params)


def lenet5(w, x):
    """fovea's lenet5; returns every node's output by fovea's node names."""
    v = {}
    v["conv1"] = F.conv2d(x, w["conv1.weight"], w["conv1.bias"], padding=2)
    v["relu1"] = F.relu(v["conv1"])
    v["pool1"] = F.max_pool2d(v["relu1"], 2)
    v["conv2"] = F.conv2d(v["pool1"], w["conv2.weight"], w["conv2.bias"])
    v["relu2"] = F.relu(v["conv2"])
    v["pool2"] = F.max_pool2d(v["relu2"], 2)
    h = F.relu(F.linear(v["pool2"].flatten(1), w["fc1.weight"], w["fc1.bias"]))
    h = F.relu(F.linear(h, w["fc2.weight"], w["fc2.bias"]))
    v["fc3"] = F.linear(h, w["fc3.weight"], w["fc3.bias"])
    return v


def grad_cam(w, x, cls, layer):
    """Selvaraju et al.: the layer's maps weighted by their mean gradient, summed, ReLU'd,
    resized bilinearly (align_corners=False) to the image."""
    v = lenet5(w, x.clone().requires_grad_(True))
    a = v[layer]
    (g,) = torch.autograd.grad(v["fc3"][0, cls], a)
    alpha = g.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * a).sum(dim=1, keepdim=True))
    return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0]


def occlusion(w, x, cls, size, stride, grey):
    """Zeiler and Fergus: the drop of the class score when a grey square covers each place;
    each pixel gets the mean drop of the squares covering it."""
    base = lenet5(w, x)["fc3"][0, cls]
    _, _, h, wd = x.shape
    total, count = torch.zeros(h, wd), torch.zeros(h, wd)
    for y in range(0, h - size + 1, stride):
        for xx in range(0, wd - size + 1, stride):
            xo = x.clone()
            xo[:, :, y:y + size, xx:xx + size] = grey
            drop = base - lenet5(w, xo)["fc3"][0, cls]
            total[y:y + size, xx:xx + size] += drop
            count[y:y + size, xx:xx + size] += 1
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


def cam_case():
    viz = {k: v.to(torch.float64) for k, v in load_file(os.path.join(OUT, "viz_lenet5.safetensors")).items()}
    w = {k: v for k, v in viz.items() if k.split(".")[0] in ("conv1", "conv2", "fc1", "fc2", "fc3")}
    x = viz["input"]
    cls, size, stride = 3, 6, 2
    # The grey square fovea uses for an image normalised with mean 0.1307 and std 0.3081.
    grey = (0.5 - 0.1307) / 0.3081
    tensors = dict(w)
    tensors["input"] = x
    tensors["gradcam.relu2"] = grad_cam(w, x, cls, "relu2")
    tensors["gradcam.relu1"] = grad_cam(w, x, cls, "relu1")
    with torch.no_grad():
        tensors["occlusion"] = occlusion(w, x, cls, size, stride, grey)
    params = {"architecture": "LeNet-5 as in op net", "class": cls, "layers": ["relu2", "relu1"], "occlusion": {"size": size, "stride": stride, "mean": 0.1307, "std": 0.3081}}
    save("cam_lenet5", tensors, "cam", params)


if __name__ == "__main__":
    optim_case("optim_sgd_plain", "sgd", lr=0.1)
    optim_case("optim_sgd_momentum_decay", "sgd", lr=0.05, momentum=0.9, weight_decay=0.01)
    optim_case("optim_sgd_nesterov", "sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001)
    optim_case("optim_adam_decay", "adam", lr=0.01, weight_decay=0.01)
    optim_case("optim_adamw", "adamw", lr=0.01, weight_decay=0.1)
    cam_case()
