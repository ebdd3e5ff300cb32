"""Cross-check of nnserve's default column encoding against Keras' FeatureSpace (not in CI).

A churn-like table (two text categories, one with empty cells, and a number missing in 10%
of rows) is split into its first 80% (training) and last 20% (validation, as Keras'
validation_split takes). nnserve trains on the training rows with no `features` at all and
is evaluated on the validation rows; Keras fits `keras.utils.FeatureSpace` on the same
training rows and trains the same network. The script compares, per column, the encoding
nnserve stored in the model file with the block FeatureSpace produces for the same rows,
then both final validation metrics, and prints one JSON line.

Keras has no missing-number handling: its tenure column gets nnserve's fill (the training
mean of the present values) and nnserve's indicator as an extra `float` feature. Filling with
the mean keeps the mean but shrinks the variance Keras adapts, so the tenure comparison is of
nnserve's statistics with numpy's over the present values, and Keras' figure is reported.

    python3 -m venv /tmp/keras && /tmp/keras/bin/pip install tensorflow-cpu==2.21.0 keras==3.15.1
    cargo build --release
    /tmp/keras/bin/python benches/keras_featurespace.py --bin target/release/nnserve
"""

import argparse
import json
import os
import socket
import sqlite3
import struct
import subprocess
import tempfile
import time
import urllib.request

import numpy as np

PLANS = ["basic", "pro", "gold", "trial"]
REGIONS = ["north", "south", "east", ""]


def table(rows, seed):
    """(header, rows as lists of text): churn is yes for `pro`, a missing tenure, or a
    short tenure in the south, with 3% of labels flipped."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(rows):
        plan = PLANS[rng.choice(4, p=[0.4, 0.3, 0.2, 0.1])]
        region = REGIONS[rng.choice(4, p=[0.4, 0.3, 0.2, 0.1])]
        missing = rng.random() < 0.1
        tenure = rng.random() * 70
        churn = plan == "pro" or missing or (tenure < 12 and region == "south")
        if rng.random() < 0.03:
            churn = not churn
        out.append([f"c{i:05d}", plan, "" if missing else f"{tenure:.2f}", region,
                    "yes" if churn else "no"])
    return ["customer", "plan", "tenure", "region", "churn"], out


def to_csv(header, rows):
    return "\n".join([",".join(header)] + [",".join(r) for r in rows]) + "\n"


class Server:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="nnserve-keras-")
        self.db = os.path.join(self.dir, "check.db")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [binary, "--addr", f"127.0.0.1:{port}", "--database-url", f"sqlite:{self.db}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("nnserve did not start")

    def call(self, method, path, body=None, content_type="application/json"):
        data = body if isinstance(body, bytes) else (
            json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def encoding(self, model_id):
        """The encoding stored in the model's safetensors metadata."""
        with sqlite3.connect(self.db) as db:
            (blob,) = db.execute("SELECT weights FROM models WHERE id = ?", (model_id,)).fetchone()
        (length,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + length])
        return json.loads(header["__metadata__"]["encoding"])

    def stop(self):
        self.process.terminate()
        self.process.wait()


SPEC = {
    "model": {"layers": [{"type": "dense", "units": 16, "activation": "relu"},
                         {"type": "dense", "units": 1, "activation": "sigmoid"}]},
    "loss": "binary_crossentropy", "optimizer": {"type": "adam", "learning_rate": 0.02},
    "metrics": ["accuracy"], "epochs": 40, "batch_size": 64, "seed": 3,
}


def train_nnserve(server, header, train, val):
    dataset = server.call("POST", "/datasets?target=churn", to_csv(header, train).encode(),
                          "text/csv")
    job = server.call("POST", "/jobs", {"dataset_id": dataset["id"], **SPEC})
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.2)
        job = server.call("GET", f"/jobs/{job['id']}")
    assert job["status"] == "succeeded", job
    evaluation = server.call("POST", f"/models/{job['model_id']}/evaluate",
                             to_csv(header, val).encode(), "text/csv")
    return server.encoding(job["model_id"]), evaluation


def nnserve_block(column, values):
    """One column's encoded block, applied from the stored encoding as nnserve documents
    it (slot 0 out of vocabulary, then the kept levels; an empty cell is the level "")."""
    if column["encoding"] == "one_hot":
        kept = {level: i + 1 for i, level in enumerate(column["kept"])}
        block = np.zeros((len(values), 1 + len(kept)), np.float32)
        for r, v in enumerate(values):
            block[r, kept.get(v, 0)] = 1.0
        return block
    raise ValueError(column["encoding"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/nnserve")
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import tensorflow as tf

    header, rows = table(args.rows, args.seed)
    cut = int(len(rows) * 0.8)
    train, val = rows[:cut], rows[cut:]
    server = Server(args.bin)
    try:
        encoding, evaluation = train_nnserve(server, header, train, val)
    finally:
        server.stop()
    columns = {c["name"]: c for c in encoding["columns"]}

    def data(part):
        tenure = [r[2] for r in part]
        present = np.array([float(t) for t in tenure if t], np.float64)
        return tenure, present

    train_tenure, present = data(train)
    mean = present.mean()
    fill = lambda ts: np.array([float(t) if t else mean for t in ts], np.float32)
    indicator = lambda ts: np.array([0.0 if t else 1.0 for t in ts], np.float32)

    def frame(part):
        tenure = [r[2] for r in part]
        return {"plan": np.array([r[1] for r in part]), "region": np.array([r[3] for r in part]),
                "tenure": fill(tenure), "tenure_missing": indicator(tenure)}

    fs = keras.utils.FeatureSpace(
        features={
            "plan": keras.utils.FeatureSpace.string_categorical(num_oov_indices=1),
            "region": keras.utils.FeatureSpace.string_categorical(num_oov_indices=1),
            "tenure": keras.utils.FeatureSpace.float_normalized(),
            "tenure_missing": keras.utils.FeatureSpace.float(),
        },
        output_mode="concat",
    )
    train_frame, val_frame = frame(train), frame(val)
    fs.adapt(tf.data.Dataset.from_tensor_slices(train_frame).batch(256))

    report = {"rows": {"training": len(train), "validation": len(val)}, "columns": {}}
    for name, index in (("plan", 1), ("region", 3)):
        keras_vocab = fs.preprocessors[name].get_vocabulary()
        # The lookup gives indices; FeatureSpace one-hot encodes them in the concatenation.
        indices = np.asarray(fs.preprocessors[name](train_frame[name])).ravel()
        keras_block = np.eye(len(keras_vocab), dtype=np.float32)[indices]
        ours = nnserve_block(columns[name], [r[index] for r in train])
        # Keras' lookup has its own slot order (by frequency, ties its own way): compare
        # the one-hot blocks after mapping each side's slots to their level names.
        ours_levels = ["[UNK]"] + columns[name]["kept"]  # Keras names its OOV slot [UNK]
        by_level_keras = {lvl: keras_block[:, i] for i, lvl in enumerate(keras_vocab)}
        by_level_ours = {lvl: ours[:, i] for i, lvl in enumerate(ours_levels)}
        same = sorted(by_level_keras) == sorted(by_level_ours) and all(
            np.array_equal(by_level_keras[lvl], by_level_ours[lvl]) for lvl in by_level_ours)
        report["columns"][name] = {
            "nnserve_slots": ours_levels, "keras_slots": keras_vocab,
            "same_order": ours_levels == keras_vocab, "same_matrix_by_level": bool(same),
        }
    tenure = columns["tenure"]
    normalizer = fs.preprocessors["tenure"]
    keras_mean = float(np.asarray(normalizer.mean).ravel()[0])
    keras_std = float(np.sqrt(np.asarray(normalizer.variance).ravel()[0]))
    report["columns"]["tenure"] = {
        "nnserve_mean": tenure["mean"], "numpy_mean_of_present": float(mean),
        "keras_mean_of_filled": keras_mean,
        "nnserve_std": 1.0 / tenure["inv_std"], "numpy_std_of_present": float(present.std()),
        "keras_std_of_filled": keras_std, "nnserve_indicator": tenure["indicator"],
    }

    keras.utils.set_random_seed(3)
    x_train = fs(train_frame)
    x_val = fs(val_frame)
    y = lambda part: np.array([[1.0 if r[4] == "yes" else 0.0] for r in part], np.float32)
    model = keras.Sequential([keras.Input((x_train.shape[1],)),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y(train), epochs=40, batch_size=64,
                        validation_data=(x_val, y(val)), verbose=0)
    report["validation"] = {
        "nnserve": {"loss": evaluation["loss"], "accuracy": evaluation["metrics"]["accuracy"]},
        "keras": {"loss": history.history["val_loss"][-1],
                  "accuracy": history.history["val_accuracy"][-1]},
        "width": {"keras": int(x_train.shape[1]),
                  "nnserve": sum(1 + len(c["kept"]) if c["encoding"] == "one_hot" else
                                 (2 if c.get("indicator") else 1) if c["encoding"] == "standardize"
                                 else 0 for c in encoding["columns"])},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
