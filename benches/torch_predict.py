#!/usr/bin/env python3
"""PyTorch's in-process predict on W1's network (784-256-128-10, dropout off), the
anchor of the `protocols` bench part: the median seconds of `model(x)` under
torch.inference_mode() for each row count, numpy -> tensor -> numpy included, on
torch.set_num_threads(2). Prints {"<rows>": seconds, ...}.
"""
import argparse
import json
import time

import numpy as np
import torch

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--rows", default="1000,100000", help="comma-separated row counts")
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
nn = torch.nn
model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2),
                      nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(dim=1))
model.eval()
rng = np.random.default_rng(0)
answer = {}
for rows in (int(r) for r in args.rows.split(",")):
    x = (rng.integers(0, 32, size=(rows, 784)) / 16).astype(np.float32)
    repeats = 3 if rows > 10_000 else 20
    seconds = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            start = time.perf_counter()
            model(torch.from_numpy(x)).numpy()
            if i:
                seconds.append(time.perf_counter() - start)
    answer[str(rows)] = sorted(seconds)[len(seconds) // 2]
print(json.dumps(answer))
