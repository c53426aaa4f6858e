"""Reference cases that ../shared/golden does not hold, computed by PyTorch in float64 and
stored as float32 in tests/data/golden/ (schema: tests/data/golden/SCHEMA.md):

- optim_*: a few steps of torch.optim.SGD (momentum, Nesterov, weight decay), Adam with
  weight decay and AdamW, on fixed gradients;
- cam_lenet5: Grad-CAM at relu2 and relu1 and occlusion sensitivity on the LeNet-5 and image of
  viz_lenet5;
- instance_norm, reflection_pad_*, upsample_nearest_*: the layers of Johnson et al.'s style
  network, forward and backward;
- transformer_net: that network (pytorch/examples' fast_neural_style TransformerNet, its names)
  at width 4 instead of 32, on a small batch: output, input gradient, every parameter gradient.

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


def layer_case(name, op, params, fn, shape, extra=None):
    """Forward and backward of fn on a random input (and random extra parameters)."""
    g = torch.Generator().manual_seed(len(name) * 7 + 1)
    x = (torch.rand(*shape, generator=g) * 4 - 2).requires_grad_(True)
    extra = {k: v(g).requires_grad_(True) for k, v in (extra or {}).items()}
    y = fn(x, **extra)
    dy = torch.rand(*y.shape, generator=g) * 2 - 1
    grads = torch.autograd.grad(y, [x, *extra.values()], dy)
    tensors = {"input": x, "output": y, "grad_output": dy, "grad_input": grads[0]}
    for (k, v), gk in zip(extra.items(), grads[1:]):
        tensors[k] = v
        tensors["grad_" + k] = gk
    save(name, tensors, op, params)


def instance_norm_case():
    c = 3
    layer_case("instance_norm", "instance_norm", {"eps": 1e-5},
               lambda x, weight, bias: F.instance_norm(x, weight=weight, bias=bias, eps=1e-5), (2, c, 5, 7),
               {"weight": lambda g: torch.rand(c, generator=g) + 0.5, "bias": lambda g: torch.rand(c, generator=g) - 0.5})


def reflection_pad_case(name, pad, shape):
    t, b, l, r = pad
    layer_case(name, "reflection_pad2d", {"padding": pad}, lambda x: F.pad(x, (l, r, t, b), mode="reflect"), shape)


def upsample_case(name, scale, shape):
    layer_case(name, "upsample_nearest2d", {"scale": scale}, lambda x: F.interpolate(x, scale_factor=scale, mode="nearest"), shape)


class ConvLayer(torch.nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.reflection_pad = torch.nn.ReflectionPad2d(k // 2)
        self.conv2d = torch.nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = ConvLayer(c, c, 3, 1)
        self.in1 = torch.nn.InstanceNorm2d(c, affine=True)
        self.conv2 = ConvLayer(c, c, 3, 1)
        self.in2 = torch.nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        return self.in2(self.conv2(F.relu(self.in1(self.conv1(x))))) + x


class UpsampleConvLayer(ConvLayer):
    def forward(self, x):
        return super().forward(F.interpolate(x, mode="nearest", scale_factor=2))


class TransformerNet(torch.nn.Module):
    """pytorch/examples fast_neural_style/neural_style/transformer_net.py, width 32 there."""

    def __init__(self, w):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, w, 9, 1), torch.nn.InstanceNorm2d(w, affine=True)
        self.conv2, self.in2 = ConvLayer(w, 2 * w, 3, 2), torch.nn.InstanceNorm2d(2 * w, affine=True)
        self.conv3, self.in3 = ConvLayer(2 * w, 4 * w, 3, 2), torch.nn.InstanceNorm2d(4 * w, affine=True)
        for i in range(1, 6):
            setattr(self, f"res{i}", ResidualBlock(4 * w))
        self.deconv1, self.in4 = UpsampleConvLayer(4 * w, 2 * w, 3, 1), torch.nn.InstanceNorm2d(2 * w, affine=True)
        self.deconv2, self.in5 = UpsampleConvLayer(2 * w, w, 3, 1), torch.nn.InstanceNorm2d(w, affine=True)
        self.deconv3 = ConvLayer(w, 3, 9, 1)

    def forward(self, x):
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for i in range(1, 6):
            y = getattr(self, f"res{i}")(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def transformer_case(width=4):
    torch.manual_seed(5)
    net = TransformerNet(width).double()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.split(".")[-1] == "weight" and name.split(".")[-2].startswith("in"):
                p.uniform_(0.5, 1.5)
            elif name.split(".")[-2].startswith("in"):
                p.uniform_(-0.5, 0.5)
    g = torch.Generator().manual_seed(6)
    x = (torch.rand(2, 3, 12, 16, generator=g) * 255).requires_grad_(True)
    y = net(x)
    dy = torch.rand(*y.shape, generator=g) * 2 - 1
    y.backward(dy)
    tensors = {"input": x, "output": y, "grad_output": dy, "grad_input": x.grad}
    for name, p in net.named_parameters():
        tensors[name] = p
        tensors["grad." + name] = p.grad
    save("transformer_net", tensors, "transformer_net", {"width": width})


if __name__ == "__main__":
    instance_norm_case()
    reflection_pad_case("reflection_pad_4", [4, 4, 4, 4], (2, 2, 5, 6))
    reflection_pad_case("reflection_pad_asym", [1, 2, 3, 0], (1, 3, 4, 5))
    upsample_case("upsample_nearest_2", 2, (2, 3, 3, 4))
    upsample_case("upsample_nearest_3", 3, (1, 2, 2, 3))
    transformer_case()
    optim_case("optim_sgd_plain", "sgd", lr=0.1)
    optim_case("optim_sgd_momentum_decay", "sgd", lr=0.05, momentum=0.9, weight_decay=0.01)
    optim_case("optim_sgd_nesterov", "sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.001)
    optim_case("optim_adam_decay", "adam", lr=0.01, weight_decay=0.01)
    optim_case("optim_adamw", "adamw", lr=0.01, weight_decay=0.1)
    cam_case()
