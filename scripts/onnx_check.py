"""fovea's ONNX files, run by ONNX Runtime, give fovea's logits.

usage: python scripts/onnx_check.py [--fovea target/release/fovea] [--models M ...]
                                    [--weights W] [--opset 17] [--fold-batchnorm]
                                    [--batch dynamic|N] [--tolerance 1e-4]

For each model (default: the whole zoo, freshly initialised; with --weights, one model and its
weights), runs `fovea export ... --test-data DIR`, which writes the ONNX file and a random
input with fovea's logits for it (DIR/test_data_set_0/{input_0,output_0}.pb, ONNX's own test
layout), runs the file with ONNX Runtime on that input, and compares: the largest difference
relative to the largest logit must stay under --tolerance. Also runs onnx.checker on the file.
Prints one line per model and exits 1 if any differs. Needs onnx and onnxruntime
(`pip install onnx onnxruntime`); not run by CI, which checks the same with tract.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

ZOO = ["mnist-cnn", "lenet5", "alexnet-1012", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19",
       "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn", "googlenet", "googlenet-aux",
       "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def read_tensor(path):
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def check(args, model, tmp):
    path = os.path.join(tmp, f"{model}.onnx")
    data = os.path.join(tmp, model)
    os.makedirs(data, exist_ok=True)
    cmd = [args.fovea, "export", "--model", model, "-o", path, "--test-data", data,
           "--opset", str(args.opset), "--batch", args.batch]
    if args.weights:
        cmd += ["--weights", args.weights]
    if args.fold_batchnorm:
        cmd.append("--fold-batchnorm")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    onnx.checker.check_model(path, full_check=True)
    x = read_tensor(os.path.join(data, "test_data_set_0", "input_0.pb"))
    want = read_tensor(os.path.join(data, "test_data_set_0", "output_0.pb"))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"input": x})
    err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))
    nodes = len(onnx.load(path).graph.node)
    ok = err < args.tolerance
    print(f"{'ok  ' if ok else 'DIFF'} {model:14s} {nodes:4d} nodes  batch {x.shape[0]}  "
          f"relative difference {err:.2e}", flush=True)
    os.remove(path)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fovea", default="target/release/fovea")
    p.add_argument("--models", nargs="+", default=None)
    p.add_argument("--weights")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--batch", default="dynamic")
    p.add_argument("--fold-batchnorm", action="store_true")
    p.add_argument("--tolerance", type=float, default=1e-4)
    args = p.parse_args()
    models = args.models or ZOO
    if args.weights and len(models) != 1:
        sys.exit("--weights belong to one model: give it with --models")
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, opset {args.opset}")
    with tempfile.TemporaryDirectory() as tmp:
        results = [check(args, m, tmp) for m in models]
    print(f"{sum(results)} of {len(results)} models give fovea's logits in ONNX Runtime")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
