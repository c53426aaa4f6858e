#!/usr/bin/env python3
"""Writes small valid inputs as the fuzz targets' starting corpora, fuzz/corpus/<target>/.

Run from the repository root: python3 scripts/fuzz_seeds.py. Uses only the standard library."""
import gzip, io, json, os, struct, zlib

ROOT = os.path.join(os.path.dirname(__file__), "..", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def safetensors(tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def f32(values):
    return b"".join(struct.pack("<f", v) for v in values)


def png(w, h, channels):
    raw = b"".join(b"\0" + bytes((x * 37 + y * 11 + c) % 256 for x in range(w) for c in range(channels)) for y in range(h))
    kind = {1: 0, 3: 2, 4: 6}[channels]
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, kind, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


images = idx([3, 4, 4], range(48))
labels = idx([3], [1, 7, 9])
put("idx", "images", images)
put("idx", "labels.gz", gzip.compress(labels))
cut = lambda n, total: min(255, n * 256 // max(total, 1))
body = [images, labels, images, labels]
total = sum(map(len, body))
a, b = len(images), len(images) + len(labels)
head = bytes([cut(a, total), cut(len(labels), total - a), cut(len(images), total - b)])
put("mnist", "four-files", head + b"".join(body))
put("cifar", "two-records", bytes([3]) + bytes(range(256)) * 12 + bytes([9]) + bytes(3072))
put("image", "grey.png", png(5, 7, 1))
put("image", "rgb.png", png(9, 4, 3))
put("image", "rgba.png", png(3, 3, 4))
# A 9x4 baseline JPEG (written by `fovea filter -o x.jpg` from rgb.png).
put("image", "rgb.jpg", bytes.fromhex(
    "ffd8ffe000104a46494600010200000100010000ffc00011080004000903011100021101031101ffdb00430002010101"
    "01010201010102020202020403020202020504040304060506060605060606070908060709070606080b08090a0a0a0a"
    "0a06080b0c0b0a0c090a0a0affdb004301020202020202050303050a0706070a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
    "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0affc4001f0000010501010101010100"
    "000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d010203000411051221"
    "31410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a"
    "434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596979899"
    "9aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1"
    "f2f3f4f5f6f7f8f9faffc4001f0100030101010101010101010000000000000102030405060708090a0bffc400b51100"
    "020102040403040705040400010277000102031104052131061241510761711322328108144291a1b1c109233352f015"
    "6272d10a162434e125f11718191a262728292a35363738393a434445464748494a535455565758595a63646566676869"
    "6a737475767778797a82838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4"
    "c5c6c7c8c9cad2d3d4d5d6d7d8d9dae2e3e4e5e6e7e8e9eaf2f3f4f5f6f7f8f9faffda000c03010002110311003f00f3"
    "4fd9162d33e13ffc11d3e3278a3c3ba1da4d7175f0de6d1a44bd4664106a2d1e9f3b00a54ef58aea46439c070a48600a"
    "9e5cc3135309414e16bb9d38ebda752317f3b376f3ee7d270864985e20cdaa61710e4a31c3e2eaae5693e6a185ad5e0b"
    "54fdd73a715256bb8b6934ecd7ca3ff0abfc1dff0040efd47f85771f2e7fffd9"
))
put("safetensors", "f32-and-i64", safetensors({"a": ("F32", [2, 2], f32([1, 2, 3, 4])), "n": ("I64", [1], struct.pack("<q", 5))}, {"k": "v"}))
put("safetensors", "f16-bf16", safetensors({"h": ("F16", [2], b"\x00\x3c\x00\xc0"), "b": ("BF16", [1], b"\x80\x3f")}))
info = json.dumps({"model": "lenet5", "classes": [str(i) for i in range(10)], "input": [1, 28, 28]})
progress = json.dumps({"step": 3, "best_val_accuracy": 0.5, "epoch_loss_sum": 1.0, "epoch_correct": 1, "epoch_seen": 2})
put("checkpoint", "lenet5-part", safetensors(
    {"conv1.bias": ("F32", [6], f32([0.1] * 6)), "fc3.bias": ("F32", [10], f32([0.0] * 10)), "optimizer.fc3.bias.exp_avg": ("F32", [10], f32([0.0] * 10))},
    {"format": "pt", "fovea": info, "optimizer": "adam", "progress": progress}))
config = {"model": "lenet5", "input": None, "data": "bundled:mnist", "epochs": 1, "batch_size": 128, "optimizer": "adam", "lr": 0.001,
          "momentum": 0.9, "nesterov": False, "weight_decay": 0.0, "schedule": "step:100:0.5", "seed": 1, "threads": 2, "val_size": 5000,
          "shift": 2, "log_every": 50, "checkpoint_every": 200}
put("config", "config.json", json.dumps(config, indent=2).encode())
put("metrics", "metrics.jsonl", (
    '{"kind":"step","epoch":1,"step":50,"loss":0.85,"accuracy":0.69,"lr":0.00096,"images_per_sec":4560.7}\n'
    '{"kind":"epoch","epoch":1,"step":430,"train_loss":0.46,"train_accuracy":0.85,"val_loss":0.13,"val_accuracy":0.96,'
    '"test_loss":null,"test_accuracy":0.9671,"seconds":10.5}\n{"kind":"step","epoch":2').encode())
print("seeds written to", os.path.normpath(ROOT))
