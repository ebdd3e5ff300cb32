"""A real Open Inference Protocol client (tritonclient[http]) against nnserve: health,
server and model metadata, and inference with binary_data=False and True, whose
predictions must equal /predict's bit for bit.

    python triton_client.py HOST:PORT MODEL numeric|mixed
"""
import json
import sys
import urllib.request

import numpy as np
import tritonclient.http as httpclient

url, model, kind = sys.argv[1:4]
client = httpclient.InferenceServerClient(url=url)
assert client.is_server_live(), "live"
assert client.is_server_ready(), "ready"
assert client.is_model_ready(model), "model ready"
assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
metadata = client.get_model_metadata(model)
assert metadata["name"] == model, metadata
outputs = [o["name"] for o in metadata["outputs"]]


def predict(instances):
    body = json.dumps({"instances": instances}).encode()
    request = urllib.request.Request(
        f"http://{url}/models/{model}/predict", data=body,
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as answer:
        return json.load(answer)


rng = np.random.default_rng(3)
rows = 64
if kind == "numeric":
    (spec,) = metadata["inputs"]
    assert spec["datatype"] == "FP32" and spec["shape"] == [-1, 4], spec
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    expected = predict(x.tolist())

    def inputs(binary):
        tensor = httpclient.InferInput(spec["name"], list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        return [tensor]
    parameters = None
else:
    columns = {
        "plan": np.array(rng.choice(["pro", "basic", "gold"], rows), dtype=np.object_),
        "tenure": rng.uniform(0, 70, rows).astype(np.float32),
        "region": np.array(rng.choice(["north", "N/A"], rows), dtype=np.object_),
    }
    types = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    assert types["plan"] == "BYTES" and types["tenure"] == "FP32", types
    expected = predict([
        {"plan": str(p), "tenure": float(t), "region": str(r)}
        for p, t, r in zip(columns["plan"], columns["tenure"], columns["region"])
    ])

    def inputs(binary):
        tensors = []
        for name, values in columns.items():
            tensor = httpclient.InferInput(name, [rows], types[name])
            tensor.set_data_from_numpy(values, binary_data=binary)
            tensors.append(tensor)
        return tensors
    # MLServer's pandas codec marks a request of one input per column so.
    parameters = {"content_type": "pd"}

probabilities = np.array(expected["predictions"], dtype=np.float32)
for binary in (False, True):
    requested = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in outputs]
    result = client.infer(model, inputs(binary), outputs=requested, request_id="r1",
                          parameters=parameters)
    answer = result.get_response()
    assert answer["id"] == "r1" and answer["model_name"] == model, answer
    got = result.as_numpy(outputs[0])
    assert got.dtype == np.float32 and got.shape == probabilities.shape, (got.dtype, got.shape)
    assert np.array_equal(got.view(np.uint32), probabilities.view(np.uint32)), binary
    classes = result.as_numpy("class")
    if kind == "mixed":
        classes = [c.decode() if isinstance(c, bytes) else c for c in classes.tolist()]
    assert list(classes) == expected["classes"], (classes, expected["classes"])
    print(f"tritonclient {kind} binary_data={binary}: {rows} rows equal /predict's")
