#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz harnesses (tests/fuzz/corpus/NAME).

valid-* files must load; miss-* files are near misses that must be rejected (scripts/fuzz checks
both before fuzzing). The .npy files are written byte for byte as NumPy's format 1.0/2.0 writer
lays them out (and one by `tca synth`), the profile by `tca calibrate`, the model in the
docs/lm.md format with tiny dimensions so a seed stays a few KB.

usage: tests/fuzz/make_corpus.py path/to/tca
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def out(corpus, name, data):
    d = os.path.join(HERE, "corpus", corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- .npy ----------------------------------------------------------------------------------------

def npy(descr, shape, data, version=1, header=None):
    """The bytes numpy.save writes: magic, version, header length, the dict padded with spaces and
    a newline so the data starts at a multiple of 64."""
    if header is None:
        shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    pre = 10 if version == 1 else 12
    header += " " * ((64 - (pre + len(header) + 1) % 64) % 64) + "\n"
    length = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + length + header.encode("latin1") + data


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def npy_seeds(tca):
    out("npy", "valid-f32-rank3.npy", npy("<f4", (2, 3, 4), f32([0.25 * i - 2 for i in range(24)])))
    out("npy", "valid-f16-rank3.npy", npy("<f2", (1, 4, 2), struct.pack("<8e", 1, -2, 0.5, 3, 0, -0.25, 7, 1e-3)))
    out("npy", "valid-u8-rank2.npy", npy("|u1", (2, 5), bytes([0, 1, 2, 1, 0, 2, 2, 1, 1, 0])))
    out("npy", "valid-i32-rank1.npy", npy("<i4", (3,), struct.pack("<3i", -1, 0, 2**31 - 1)))
    out("npy", "valid-scalar.npy", npy("<f4", (), f32([1.5])))
    out("npy", "valid-empty.npy", npy("<f4", (0, 3), b""))
    out("npy", "valid-v2-f32.npy", npy("<f4", (1, 2, 2), f32([1, 2, 3, 4]), version=2))
    with tempfile.TemporaryDirectory() as d:  # the project's own writer
        subprocess.run([tca, "synth", "--kind", "mix", "--heads", "2", "--kv-heads", "1", "--len", "6", "--dim", "4",
                        "--seed", "1", "--out-dir", d], check=True, stdout=subprocess.DEVNULL)
        shutil.copy(os.path.join(d, "q.npy"), os.path.join(HERE, "corpus", "npy", "valid-synth-q.npy"))
    good = npy("<f4", (2, 3), f32(range(6)))
    out("npy", "miss-truncated.npy", good[:-1])
    out("npy", "miss-trailing.npy", good + b"\0")
    out("npy", "miss-bad-magic.npy", b"\x93NUMPZ" + good[6:])
    out("npy", "miss-version-4.npy", good[:6] + b"\x04" + good[7:])
    out("npy", "miss-big-endian.npy", npy(">f4", (2, 3), f32(range(6))))
    out("npy", "miss-float64.npy", npy("<f8", (3,), struct.pack("<3d", 1, 2, 3)))
    out("npy", "miss-fortran.npy", npy(None, None, f32(range(6)),
                                       header="{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"))
    out("npy", "miss-duplicate-key.npy", npy(None, None, f32(range(6)),
                                             header="{'descr': '<f4', 'fortran_order': False, 'descr': '<f4', 'shape': (2, 3), }"))
    # Issue 11: 128-byte files whose shape multiplies to 2^64.
    out("npy", "miss-overflow-2p64.npy", npy("<f4", (67108864, 1073741824, 256), b""))
    out("npy", "miss-overflow-bytes.npy", npy("<f4", (2147483648, 1073741824, 2), b""))


# ---- profile -------------------------------------------------------------------------------------

def profile_seeds(tca):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([tca, "synth", "--kind", "mix", "--heads", "4", "--kv-heads", "2", "--len", "96", "--dim", "8",
                        "--seed", "5", "--out-dir", d], check=True, stdout=subprocess.DEVNULL)
        p = os.path.join(d, "p.json")
        subprocess.run([tca, "calibrate", "--q", os.path.join(d, "q.npy"), "--k", os.path.join(d, "k.npy"),
                        "--block", "8", "--window", "16", "--device", "cpu", "--out", p],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        text = open(p).read()
    out("profile", "valid-calibrated.json", text)
    prof = json.loads(text)
    out("profile", "valid-compact.json", json.dumps(prof, separators=(",", ":")))

    def miss(name, edit=None, raw=None):
        j = json.loads(text)
        if edit:
            edit(j)
        s = json.dumps(j)
        if raw:
            s = s.replace(*raw)
        out("profile", "miss-" + name + ".json", s)

    miss("version-wrap", lambda j: j.__setitem__("version", 2**32 + 1))
    miss("version-float", lambda j: j.__setitem__("version", 1.5))
    miss("block-wrap", lambda j: j["params"].__setitem__("block", 2**32 + 8))
    miss("window-1e20", lambda j: j["params"].__setitem__("window", 1e20))
    miss("tau-overflow", lambda j: j["params"].__setitem__("tau", 12345.5), raw=("12345.5", "1e400"))
    miss("layers-wrap", lambda j: j["model"].__setitem__("layers", 2**32 + 1))
    miss("duplicate-head", lambda j: j["heads"][1].__setitem__("kv_head", 0))
    miss("missing-candidate", lambda j: j["heads"][0].__setitem__("candidate", 999))
    miss("no-closing-braces", raw=("}", ""))


# ---- model ---------------------------------------------------------------------------------------

def model(layers=1, dim=2, heads=1, kv_heads=1, head_dim=2, ffn=2, first=0x3c00):
    qd, kvd = heads * head_dim, kv_heads * head_dim
    shapes = [("tok_emb", [256, dim])]
    for i in range(layers):
        p = "layers.%d." % i
        shapes += [(p + "attn_norm", [dim]), (p + "wq", [qd, dim]), (p + "wk", [kvd, dim]), (p + "wv", [kvd, dim]),
                   (p + "wo", [dim, qd]), (p + "ffn_norm", [dim]), (p + "w1", [ffn, dim]), (p + "w2", [dim, ffn]),
                   (p + "w3", [ffn, dim])]
    shapes += [("norm", [dim]), ("output", [256, dim])]
    tensors, off = [], 0
    for name, shape in shapes:
        tensors.append({"name": name, "shape": shape, "offset": off})
        n = 1
        for s in shape:
            n *= s
        off += 2 * n
    weights = bytearray(off)
    struct.pack_into("<H", weights, 0, first)
    doc = {"format": "tca-lm", "version": 1,
           "config": {"vocab": 256, "dim": dim, "n_layers": layers, "n_heads": heads, "n_kv_heads": kv_heads,
                      "head_dim": head_dim, "ffn_dim": ffn, "norm_eps": 1e-5, "rope_theta": 10000.0,
                      "train_context": 64},
           "weights": "model.bin", "dtype": "f16", "tensors": tensors}
    return doc, bytes(weights)


def model_seed(name, doc, weights):
    out("model", name, json.dumps(doc).encode() + b"\0" + weights)


def model_seeds():
    model_seed("valid-1layer.model", *model())
    model_seed("valid-2layer-gqa.model", *model(layers=2, dim=4, heads=2, kv_heads=1, head_dim=2, ffn=4))
    doc, w = model()
    doc["config"]["n_layers"] = 16777216  # issue 11: millions of tensor names from 5 KB
    model_seed("miss-huge-layers.model", doc, w)
    doc, w = model()
    model_seed("miss-truncated-weights.model", doc, w[:-2])
    doc, w = model(first=0x7e00)  # NaN
    model_seed("miss-nan-weight.model", doc, w)
    doc, w = model()
    doc["format"] = 5
    model_seed("miss-format-number.model", doc, w)
    doc, w = model()
    doc["tensors"].append(dict(doc["tensors"][0]))
    model_seed("miss-tensor-twice.model", doc, w)
    doc, w = model()
    doc["config"]["norm_eps"] = 1e300
    model_seed("miss-eps-huge.model", doc, w)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for d in ("npy", "profile", "model"):
        shutil.rmtree(os.path.join(HERE, "corpus", d), ignore_errors=True)
    npy_seeds(sys.argv[1])
    profile_seeds(sys.argv[1])
    model_seeds()
