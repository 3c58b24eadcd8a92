"""Runs an ONNX expression model in onnxruntime (an independent runtime) on the first N
PublicTest faces of FER-2013, prepared per the model contract (grey / 255, N x 1 x 48 x 48),
and prints one JSON array of 7 probabilities per face.

usage: ort_classify.py MODEL.onnx FER2013.csv[.gz] N
"""
import csv
import gzip
import json
import sys

import numpy as np
import onnxruntime as ort

model, data, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
opener = gzip.open if data.endswith(".gz") else open
faces = []
with opener(data, "rt") as f:
    rows = csv.reader(f)
    next(rows)
    for emotion, pixels, usage in rows:
        if usage.strip() == "PublicTest":
            faces.append(np.array(pixels.split(), dtype=np.float32) / 255.0)
            if len(faces) == count:
                break
if len(faces) < count:
    sys.exit(f"only {len(faces)} PublicTest faces in {data}")
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
batch = np.stack(faces).reshape(-1, 1, 48, 48)
probabilities = session.run(["probabilities"], {"input": batch})[0]
for p in probabilities:
    print(json.dumps([float(v) for v in p]))
