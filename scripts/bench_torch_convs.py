"""PyTorch's GFLOP/s on fovea's own conv shapes, the ones the baseline's `conv_torch.py` lacks:
`r3` and `r4`, ResNet-18's 3x3 layers of 256 channels on 14x14 and 512 channels on 7x7 at batch
8 (large weights on small maps). Timed as the baseline times its shapes (its `bench`, the same
three operations), and printed in its format, to set beside
`fovea bench conv --shapes r3,r4`.

usage: python scripts/bench_torch_convs.py [--threads 1 2] [--shapes r3 r4]
         (BASELINE=<dir of the baseline's common.py>, default ../shared/bench)
prints:  shape<TAB>op<TAB>torch<TAB>threads<TAB>reps<TAB>median_ms<TAB>GFLOP/s
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("BASELINE", os.path.join(HERE, "..", "..", "shared", "bench")))
from common import bench, conv_flop, conv_out  # noqa: E402  (the baseline's own timing)

# (name, N, Cin, H, W, Cout, k, stride, pad), as `fovea bench conv` lists them.
SHAPES = [
    ("r3", 8, 256, 14, 14, 256, 3, 1, 1),
    ("r4", 8, 512, 7, 7, 512, 3, 1, 1),
]

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
ap.add_argument("--shapes", nargs="+", default=[s[0] for s in SHAPES])
args = ap.parse_args()
torch.manual_seed(0)

for t in args.threads:
    torch.set_num_threads(t)
    for name, n, cin, h, w_, cout, k, s, p in SHAPES:
        if name not in args.shapes:
            continue
        flop = conv_flop(n, cin, h, w_, cout, k, s, p)
        x = torch.randn(n, cin, h, w_)
        w = torch.randn(cout, cin, k, k) * 0.1
        g = torch.randn(n, cout, conv_out(h, k, s, p), conv_out(w_, k, s, p))

        def fwd():
            with torch.inference_mode():
                F.conv2d(x, w, None, s, p)

        def bwd(mask):
            return lambda: torch.ops.aten.convolution_backward(g, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)

        for op, fn in [("fwd", fwd), ("bwd_input", bwd([True, False, False])), ("bwd_weight", bwd([False, True, False]))]:
            reps, med, _, _ = bench(fn, min_reps=10, target_s=2.0)
            print(f"{name}\t{op}\ttorch\t{t}\t{reps}\t{med * 1e3:.3f}\t{flop / med / 1e9:.1f}", flush=True)
