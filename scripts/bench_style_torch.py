"""PyTorch's time for one training step of Johnson et al.'s real-time style transfer, as
pytorch/examples' fast_neural_style takes it but with fovea's losses and layers: the
TransformerNet (width 32) on a batch of 4 crops of 256x256, VGG-19's features up to relu4_3
(features.24) for the stylised batch and up to relu2_2 for the photos, Gram matrices at
relu1_2, relu2_2, relu3_3, relu4_3, Adam at 1e-3; and the time to stylise one 1024x1024 photo
(inference, per megapixel). Random weights: the time does not depend on them.

usage: python scripts/bench_style_torch.py [--threads T] [--steps N]
prints:  STYLE<TAB>pytorch<TAB>threads<TAB>step_seconds<TAB>apply_seconds_per_megapixel
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from golden_extra import TransformerNet  # noqa: E402  (the same network as the golden case)

torch.set_default_dtype(torch.float32)


def gram(f):
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    net = TransformerNet(32).float()
    vgg = torchvision.models.vgg19().features[:25].eval()
    for q in vgg.parameters():
        q.requires_grad_(False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    norm = lambda x: (x / 255 - mean) / std
    style_at, content_at = [3, 8, 15, 24], 8

    def feats(x, upto):
        out = {}
        for i, layer in enumerate(vgg):
            x = layer(x)
            if i in style_at or i == content_at:
                out[i] = x
            if i == upto:
                break
        return out

    with torch.no_grad():
        grams = {i: gram(f) for i, f in feats(norm(torch.rand(1, 3, 256, 256) * 255), 24).items() if i in style_at}
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(4, 3, 256, 256) * 255
    times = []
    for _ in range(a.steps + 1):
        t = time.perf_counter()
        opt.zero_grad()
        y = net(x)
        with torch.no_grad():
            target = feats(norm(x), content_at)[content_at]
        fy = feats(norm(y), 24)
        content = 0.5 * ((fy[content_at] - target) ** 2).sum()
        style = 0
        for i in style_at:
            _, n, h, w = fy[i].shape
            style = style + ((gram(fy[i]) - grams[i]) ** 2).sum() / (4 * n * n * (h * w) ** 2) / len(style_at)
        (content + 1e8 * style).backward()
        opt.step()
        times.append(time.perf_counter() - t)
    step = sorted(times[1:])[len(times[1:]) // 2]
    with torch.no_grad():
        photo = torch.rand(1, 3, 1024, 1024) * 255
        net(photo)
        t = time.perf_counter()
        net(photo)
        apply = time.perf_counter() - t
    print(f"STYLE\tpytorch\t{a.threads}\t{step:.3f}\t{apply / 1.048576:.3f}")


if __name__ == "__main__":
    main()
