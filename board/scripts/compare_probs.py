"""Compares two files of per-face probability vectors (JSON arrays, one per line):
top-1 must agree on every face and probabilities within 1e-3. Exit 1 otherwise."""
import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def top1(p):
    return max(range(len(p)), key=lambda i: p[i])


a, b = load(sys.argv[1]), load(sys.argv[2])
if len(a) != len(b) or not a:
    sys.exit(f"different or empty face counts: {len(a)} vs {len(b)}")
agree = sum(top1(x) == top1(y) for x, y in zip(a, b))
diff = max(abs(u - v) for x, y in zip(a, b) for u, v in zip(x, y))
print(f"x86 vs aarch64 on {len(a)} faces: top-1 agreement {agree}/{len(a)}, "
      f"max |probability difference| {diff:.2e}")
if agree != len(a) or diff > 1e-3:
    sys.exit("aarch64 disagrees with x86")
