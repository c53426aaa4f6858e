"""Ratios of fovea's benchmark lines to the baseline's (../shared/bench formats), as Markdown.

usage: python3 scripts/bench_ratios.py fovea.tsv baseline.tsv [machine.txt]
Conv layers: GFLOP/s ratio (fovea's `auto` path against PyTorch's oneDNN), and their geometric
mean; training: PyTorch's epoch seconds / fovea's (above 1: fovea is faster); inference:
images/s ratios against PyTorch and ONNX Runtime.
"""
import math
import sys


def lines(path):
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            yield line.rstrip("\n").split("\t")


def main():
    fovea_path, base_path = sys.argv[1], sys.argv[2]
    conv_f, conv_b, train_f, train_b, infer_f, infer_b = {}, {}, {}, {}, {}, {}
    for cols in lines(fovea_path):
        if len(cols) >= 7 and cols[0] in "abcdef" and cols[2].startswith("fovea"):
            # The first path listed (`bench conv --path auto`, the default) is the one compared.
            conv_f.setdefault((cols[0], cols[1], cols[3]), (float(cols[6]), cols[2]))
        elif cols[0] == "TRAIN":
            train_f[(cols[1], cols[2])] = (float(cols[4]), cols[5], cols[6])
        elif cols[0] == "INFER":
            infer_f[(cols[1], cols[3])] = float(cols[6].split()[0])
    for cols in lines(base_path):
        if len(cols) >= 7 and cols[0] in "abcdef" and cols[1] in ("fwd", "bwd_input", "bwd_weight"):
            key = (cols[0], cols[1], cols[3])
            if cols[2].startswith("torch"):
                conv_b[key] = float(cols[6])
            elif cols[2].startswith("onnxruntime"):
                conv_b[("ort",) + key] = float(cols[6])
        elif cols[0] == "TRAIN":
            net = "mnist-cnn" if cols[1] == "deep" else cols[1]
            train_b[(net, cols[2])] = (float(cols[4]), cols[5], cols[6])
        elif cols[0] == "INFER":
            net = "mnist-cnn" if cols[1] == "deep" else cols[1]
            infer_b[(net, cols[2], cols[3])] = float(cols[6].split()[0])
    if len(sys.argv) > 3:
        print("".join(open(sys.argv[3]).readlines()).replace("# ", "- "))
    threads = sorted({k[2] for k in conv_f})
    print("| conv (shape, op) | " + " | ".join(f"fovea / PyTorch GFLOP/s, {t} thr | ratio" for t in threads) + " |")
    print("| --- |" + " --- | --- |" * len(threads))
    logs = {t: [] for t in threads}
    for shape in "abcdef":
        for op in ("fwd", "bwd_input", "bwd_weight"):
            cells = []
            for t in threads:
                f, b = conv_f.get((shape, op, t)), conv_b.get((shape, op, t))
                if f and b:
                    r = f[0] / b
                    logs[t].append(math.log(r))
                    cells.append(f"{f[0]:.0f} ({f[1].replace('fovea-', '')}) / {b:.0f} | {r:.2f}")
                else:
                    cells.append("- | -")
            print(f"| {shape} {op} | " + " | ".join(cells) + " |")
    print("| geometric mean | " + " | ".join(f"| {math.exp(sum(v) / len(v)):.2f}" if v else "| -" for t, v in logs.items()) + " |")
    print()
    print("| training, 1 epoch of 60,000 | threads | fovea s | PyTorch s | PyTorch / fovea | fovea loss, acc | PyTorch loss, acc |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (net, t), (fs, fl, fa) in sorted(train_f.items()):
        b = train_b.get((net, t))
        if b:
            print(f"| {net} | {t} | {fs:.2f} | {b[0]:.2f} | {b[0] / fs:.2f} | {fl}, {fa} | {b[1]}, {b[2]} |")
    print()
    print("| inference, batch 256 | threads | fovea img/s | PyTorch | ONNX Runtime | fovea / PyTorch | fovea / ORT |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (net, t), f in sorted(infer_f.items()):
        pt, ort = infer_b.get((net, "torch", t)), infer_b.get((net, "onnxruntime", t))
        ratio = lambda b: f"{f / b:.2f}" if b else "-"
        print(f"| {net} | {t} | {f:.0f} | {pt or '-'} | {ort or '-'} | {ratio(pt)} | {ratio(ort)} |")


main()
