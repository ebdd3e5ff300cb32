"""Runs an exported ONNX file in onnxruntime, an implementation nnserve did not write.

Reads {"model": path, "inputs": {name: {"type": "float" | "string", "rows": [[...], ...]}}}
on stdin (null for a missing float); checks the file with onnx's full checker; prints
{"predictions": [[...], ...], "metadata": {...}, "inputs": [...], "outputs": [...]}.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

request = json.load(sys.stdin)
onnx.checker.check_model(onnx.load(request["model"]), full_check=True)
session = ort.InferenceSession(request["model"], providers=["CPUExecutionProvider"])
feeds = {}
for name, given in request["inputs"].items():
    if given["type"] == "float":
        rows = [[np.nan if v is None else v for v in row] for row in given["rows"]]
        feeds[name] = np.array(rows, dtype=np.float32)
    else:
        feeds[name] = np.array(given["rows"], dtype=object)
(predictions,) = session.run(["predictions"], feeds)
json.dump(
    {
        "predictions": predictions.astype(float).tolist(),
        "metadata": session.get_modelmeta().custom_metadata_map,
        "inputs": [i.name for i in session.get_inputs()],
        "outputs": [o.name for o in session.get_outputs()],
    },
    sys.stdout,
)
