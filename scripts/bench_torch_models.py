"""PyTorch's time for the zoo models, to set beside `fovea bench step --model M --batch-size B`.

usage: python scripts/bench_torch_models.py [--model resnet18] [--batch 8] [--threads 2] [--reps 5]
       [--input 3x224x224]   (VGG-16 on CIFAR-10's size: --model vgg16 --input 3x32x32, beside
                              `fovea bench step --model vgg16 --input 3x32x32`)
Prints the median forward time (eval mode, no grad), forward+backward time (train mode,
cross-entropy, gradients for every parameter) and training step time (the same and Adam's
step, as `fovea bench step` measures its `step`), in milliseconds.
Needs torch and torchvision (the baseline's venv lacks torchvision: `pip install torchvision`
into it); run by hand, not by CI. Runs under scripts/bench_vs_pytorch.sh's GLIBC_TUNABLES (it
starts itself again with them where they are not set): without them glibc maps PyTorch's large
tensors anew on every call, and ResNet-18's step read 549-591 ms instead of 505-530 on Zen 4.
"""
import argparse
import os
import statistics
import sys
import time

TUNABLES = "glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=1073741824"
if os.environ.get("GLIBC_TUNABLES") != TUNABLES:
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "GLIBC_TUNABLES": TUNABLES})

import torch
import torch.nn.functional as F
import torchvision


def median_ms(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--input", default="3x224x224", help="CxHxW of the input")
    a = ap.parse_args()
    c, h, w = (int(v) for v in a.input.split("x"))
    torch.set_num_threads(a.threads)
    m = getattr(torchvision.models, a.model)(weights=None)
    x = torch.randn(a.batch, c, h, w)
    y = torch.arange(a.batch) % 10

    def fwd():
        m.eval()
        with torch.no_grad():
            m(x)

    def fwd_bwd():
        m.train()
        m.zero_grad(set_to_none=False)
        out = m(x)
        out = out.logits if hasattr(out, "logits") else out
        F.cross_entropy(out, y).backward()

    opt = torch.optim.Adam(m.parameters(), lr=1e-3)

    def step():
        fwd_bwd()
        opt.step()

    print(f"{a.model}\tinput {a.input}\tbatch {a.batch}\tthreads {a.threads}\tforward_ms {median_ms(fwd, a.reps):.1f}\tforward_backward_ms {median_ms(fwd_bwd, a.reps):.1f}\tstep_ms {median_ms(step, a.reps):.1f}")


if __name__ == "__main__":
    main()
