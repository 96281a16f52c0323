#!/usr/bin/python3
"""Train, export, evaluate the byte-level LM of docs/lm.md (the model `tca lm` runs).

Modes:
  train (default)    phase 1 at --ctx1 (short context), then phase 2 at --ctx2 (4096) fine-tuning,
                     each time-boxed by wall clock (--minutes1/--minutes2); checkpoints to --ckpt-dir;
                     exports models/austen/model.json + model.bin (fp16) with a "training" record.
  --export-from CKPT export model.json/.bin from a checkpoint (an interrupted run).
  --eval             held-out bits per byte of the saved model at --eval-contexts.
  --export-fixture   tests/data/lm/fixture_{text.bin,logits.npy,meta.json} from the saved model.

Text: scripts/lm/extract_austen.py --out DATA gives DATA/train.txt and DATA/heldout.txt.
Bits per byte at context T: the held-out novel is cut into floor(N/T) non-overlapping windows of T
bytes; in each window the model predicts bytes 1..T-1 from their prefix (positions from 0 at the
window's first byte); bpb = mean negative log2-likelihood over all those predictions.
"""
import argparse
import json
import math
import os
import shlex
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spinning threads when the cores are shared
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import niah  # noqa: E402  (the retrieval formats, shared with scripts/lm-niah)
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ----------------------------------------------------------------------------- model

class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        D, hd, F_ = c["dim"], c["head_dim"], c["ffn_dim"]
        self.attn_norm = nn.Parameter(torch.ones(D))
        self.wq = nn.Parameter(torch.empty(c["n_heads"] * hd, D))
        self.wk = nn.Parameter(torch.empty(c["n_kv_heads"] * hd, D))
        self.wv = nn.Parameter(torch.empty(c["n_kv_heads"] * hd, D))
        self.wo = nn.Parameter(torch.empty(D, c["n_heads"] * hd))
        self.ffn_norm = nn.Parameter(torch.ones(D))
        self.w1 = nn.Parameter(torch.empty(F_, D))
        self.w2 = nn.Parameter(torch.empty(D, F_))
        self.w3 = nn.Parameter(torch.empty(F_, D))


class LM(nn.Module):
    """Parameter names are exactly the tensor names of docs/lm.md."""

    def __init__(self, c):
        super().__init__()
        self.c = dict(c)
        D = c["dim"]
        self.tok_emb = nn.Parameter(torch.empty(c["vocab"], D))
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["n_layers"])])
        self.norm = nn.Parameter(torch.ones(D))
        self.output = nn.Parameter(torch.empty(c["vocab"], D))
        self._rope = {}
        self._mask = {}

    def init_weights(self, seed):
        g = torch.Generator().manual_seed(seed)
        std, out_std = 0.02, 0.02 / math.sqrt(2 * self.c["n_layers"])
        for name, p in self.named_parameters():
            if p.dim() == 1:
                continue
            s = out_std if name.endswith(".wo") or name.endswith(".w2") else std
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=g) * s)

    def rope(self, T):
        if T not in self._rope:
            hd = self.c["head_dim"]
            j = torch.arange(hd // 2, dtype=torch.float64)
            f = self.c["rope_theta"] ** (-2.0 * j / hd)
            a = torch.arange(T, dtype=torch.float64)[:, None] * f[None, :]
            self._rope[T] = (torch.cos(a).float(), torch.sin(a).float())
        return self._rope[T]

    @staticmethod
    def apply_rope(x, cos, sin):  # x [B, H, T, hd]; rotate-half layout
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    def mask(self, T):
        if T not in self._mask:
            self._mask[T] = torch.ones(T, T, dtype=torch.bool).triu(1)  # True = masked (key after query)
        return self._mask[T]

    def attention(self, q, k, v, chunk):
        """q [B,Hq,T,hd], k/v [B,Hkv,T,hd]; causal GQA; query head h uses KV head h // (Hq/Hkv)."""
        B, Hq, T, hd = q.shape
        Hkv = k.shape[1]
        rep = Hq // Hkv
        q = q.view(B, Hkv, rep, T, hd)
        kT = k.unsqueeze(2).transpose(-1, -2)  # [B,Hkv,1,hd,T]
        v = v.unsqueeze(2)
        scale = 1.0 / math.sqrt(hd)
        mask = self.mask(T)
        outs = []
        for s in range(0, T, chunk):
            e = min(T, s + chunk)
            sc = torch.matmul(q[..., s:e, :], kT[..., :e]) * scale  # [B,Hkv,rep,e-s,e]
            sc = sc.masked_fill(mask[s:e, :e], float("-inf"))
            p = torch.softmax(sc, dim=-1)
            outs.append(torch.matmul(p, v[..., :e, :]))
        o = outs[0] if len(outs) == 1 else torch.cat(outs, dim=3)
        return o.reshape(B, Hq, T, hd)

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["norm_eps"]) * w

    def forward(self, idx, chunk=1024):
        B, T = idx.shape
        c = self.c
        hd, Hq, Hkv = c["head_dim"], c["n_heads"], c["n_kv_heads"]
        cos, sin = self.rope(T)
        x = F.embedding(idx, self.tok_emb)
        for L in self.layers:
            h = self.rms(x, L.attn_norm)
            q = F.linear(h, L.wq).view(B, T, Hq, hd).transpose(1, 2)
            k = F.linear(h, L.wk).view(B, T, Hkv, hd).transpose(1, 2)
            v = F.linear(h, L.wv).view(B, T, Hkv, hd).transpose(1, 2)
            q, k = self.apply_rope(q, cos, sin), self.apply_rope(k, cos, sin)
            o = self.attention(q, k, v, chunk).transpose(1, 2).reshape(B, T, Hq * hd)
            x = x + F.linear(o, L.wo)
            h = self.rms(x, L.ffn_norm)
            x = x + F.linear(F.silu(F.linear(h, L.w1)) * F.linear(h, L.w3), L.w2)
        return F.linear(self.rms(x, self.norm), self.output)


def default_config(a):
    return {"vocab": 256, "dim": a.dim, "n_layers": a.layers, "n_heads": a.heads, "n_kv_heads": a.kv_heads,
            "head_dim": a.head_dim, "ffn_dim": a.ffn_dim, "norm_eps": 1e-5, "rope_theta": 10000.0,
            "train_context": a.ctx2 if a.minutes2 > 0 else a.ctx1}


# ----------------------------------------------------------------------------- files

def tensor_order(c):
    names = ["tok_emb"]
    for i in range(c["n_layers"]):
        names += [f"layers.{i}.{n}" for n in ("attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3")]
    return names + ["norm", "output"]


def half_round_(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def export_model(model, out_dir, training):
    os.makedirs(out_dir, exist_ok=True)
    sd = model.state_dict()
    tensors, blobs, off = [], [], 0
    for name in tensor_order(model.c):
        a = sd[name].detach().cpu().numpy().astype("<f2")
        tensors.append({"name": name, "shape": list(a.shape), "offset": off})
        blobs.append(a.tobytes(order="C"))
        off += a.nbytes
    meta = {"format": "tca-lm", "version": 1, "config": model.c, "weights": "model.bin", "dtype": "f16",
            "tensors": tensors, "training": training}
    with open(os.path.join(out_dir, "model.bin.tmp"), "wb") as f:
        f.write(b"".join(blobs))
    with open(os.path.join(out_dir, "model.json.tmp"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    os.replace(os.path.join(out_dir, "model.bin.tmp"), os.path.join(out_dir, "model.bin"))
    os.replace(os.path.join(out_dir, "model.json.tmp"), os.path.join(out_dir, "model.json"))


def load_model(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        meta = json.load(f)
    assert meta["format"] == "tca-lm" and meta["dtype"] == "f16", "not a tca-lm f16 model"
    with open(os.path.join(model_dir, meta["weights"]), "rb") as f:
        blob = f.read()
    model = LM(meta["config"])
    sd = {}
    for t in meta["tensors"]:
        n = int(np.prod(t["shape"]))
        a = np.frombuffer(blob, dtype="<f2", count=n, offset=t["offset"]).reshape(t["shape"])
        sd[t["name"]] = torch.from_numpy(a.astype(np.float32))
    model.load_state_dict(sd)
    return model, meta


def read_bytes(path):
    with open(path, "rb") as f:
        return torch.from_numpy(np.frombuffer(f.read(), dtype=np.uint8).astype(np.int64))


# ----------------------------------------------------------------------------- eval

@torch.no_grad()
def bpb(model, data, T, max_windows=None, batch=None, chunk=1024):
    """Bits per byte over floor(N/T) non-overlapping windows of T bytes (or the first max_windows)."""
    model.eval()
    nw = data.numel() // T
    if max_windows is not None:
        nw = min(nw, max_windows)
    if batch is None:
        batch = max(1, 8192 // T)
    tot, cnt = 0.0, 0
    for s in range(0, nw, batch):
        b = min(batch, nw - s)
        x = data[s * T:(s + b) * T].view(b, T)
        logits = model(x, chunk=chunk)
        nll = F.cross_entropy(logits[:, :-1].reshape(-1, 256), x[:, 1:].reshape(-1), reduction="sum")
        tot += nll.item()
        cnt += b * (T - 1)
    model.train()
    return tot / cnt / math.log(2), nw


# ----------------------------------------------------------------------------- train

def lr_at(frac, step, warmup, peak, floor):
    if step < warmup:
        return peak * (step + 1) / warmup
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def run_phase(model, opt, data, heldout, a, phase, ctx, batch, minutes, lr, warmup, seed, ckpt, log):
    g = torch.Generator().manual_seed(seed)
    start = time.time()
    step, ema = 0, None
    last_ckpt = start
    n = data.numel()
    chunk = a.chunk
    rrng = niah.new_rng("train", seed)  # the retrieval mix's own generator, fixed by the seed
    raw = bytes(data.to(torch.uint8).numpy()) if a.retrieval_share > 0 else b""
    words = niah.load_words() if a.retrieval_share > 0 else []
    while True:
        el = time.time() - start
        if el >= minutes * 60:
            break
        cur = lr_at(el / (minutes * 60), step, warmup, lr, lr * a.lr_floor)
        for pg in opt.param_groups:
            pg["lr"] = cur
        off = torch.randint(0, n - ctx - 1, (batch,), generator=g)
        rows, weights = [], None
        for bi, o in enumerate(off.tolist()):
            if a.retrieval_share > 0 and rrng.random() < a.retrieval_share:
                # A window with needles and questions (docs/lm.md "Retrieval tasks"); the haystack
                # comes from the same training text.
                win, digits = niah.training_window(raw, rrng, words, ctx + 1)
                rows.append(torch.tensor(list(win), dtype=torch.int64))
                if a.answer_weight != 1.0:
                    if weights is None:
                        weights = torch.ones(batch, ctx)
                    for d in digits:  # target index d-1 predicts byte d
                        weights[bi, d - 1] = a.answer_weight
            else:
                rows.append(data[o:o + ctx + 1])
        x = torch.stack(rows)
        logits = model(x[:, :-1], chunk=chunk)
        if weights is None:
            loss = F.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1))
        else:
            per = F.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1), reduction="none")
            loss = (per * weights.reshape(-1)).sum() / weights.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        step += 1
        lv = loss.item()
        ema = lv if ema is None else 0.98 * ema + 0.02 * lv
        if step % a.log_every == 0 or step == 1:
            log(f"phase {phase} step {step} t {el / 60:.1f}m lr {cur:.2e} loss {lv:.4f} ema {ema:.4f} "
                f"bpb {ema / math.log(2):.3f} gnorm {gn:.2f} tok/s {step * batch * ctx / max(1e-9, time.time() - start):.0f}")
        eval_every = a.eval_every if phase == 1 else a.eval_every2
        if eval_every and step % eval_every == 0:
            v, nw = bpb(model, heldout, ctx, max_windows=max(1, a.eval_bytes // ctx))
            log(f"phase {phase} step {step} heldout bpb@{ctx} ({nw} windows) {v:.4f}")
        if time.time() - last_ckpt > a.ckpt_minutes * 60:
            save_ckpt(ckpt, model, opt, phase, step)
            last_ckpt = time.time()
    save_ckpt(ckpt, model, opt, phase, step)
    return {"phase": phase, "context": ctx, "batch": batch, "minutes": minutes, "peak_lr": lr,
            "warmup_steps": warmup, "steps": step, "tokens": step * batch * ctx,
            "wall_minutes": round((time.time() - start) / 60, 2), "final_loss_ema": round(ema, 4),
            "final_train_bpb_ema": round(ema / math.log(2), 4)}


def save_ckpt(path, model, opt, phase, step):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({"config": model.c, "model": model.state_dict(), "opt": opt.state_dict(),
                "phase": phase, "step": step}, path + ".tmp")
    os.replace(path + ".tmp", path)


def make_opt(model, a, lr):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    nodecay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": nodecay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


def final_eval(model, heldout, contexts, log):
    res = {}
    for T in contexts:
        t0 = time.time()
        v, nw = bpb(model, heldout, T)
        res[str(T)] = {"bpb": round(v, 4), "windows": nw}
        log(f"heldout bpb@{T}: {v:.4f} ({nw} windows, {time.time() - t0:.0f}s)")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/tmp/austen", help="directory from extract_austen.py")
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "models", "austen"))
    ap.add_argument("--ckpt-dir", default="/tmp/lm-ckpt")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--ffn-dim", type=int, default=512)
    ap.add_argument("--ctx1", type=int, default=512)
    ap.add_argument("--batch1", type=int, default=8)
    ap.add_argument("--minutes1", type=float, default=35)
    ap.add_argument("--lr1", type=float, default=3e-3)
    ap.add_argument("--warmup1", type=int, default=50)
    ap.add_argument("--ctx2", type=int, default=4096)
    ap.add_argument("--batch2", type=int, default=1)
    ap.add_argument("--minutes2", type=float, default=14)
    ap.add_argument("--lr2", type=float, default=1e-3)
    ap.add_argument("--warmup2", type=int, default=10)
    ap.add_argument("--lr-floor", type=float, default=0.1, help="final lr as a fraction of the peak")
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--chunk", type=int, default=512, help="query chunk of the causal attention")
    ap.add_argument("--retrieval-share", type=float, default=0.0,
                    help="share of training windows with needles and questions (docs/lm.md 'Retrieval tasks')")
    ap.add_argument("--answer-weight", type=float, default=1.0,
                    help="loss weight of the answer digits in retrieval windows (1 = plain LM loss)")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-every2", type=int, default=30)
    ap.add_argument("--eval-bytes", type=int, default=32768, help="held-out bytes for in-training evals")
    ap.add_argument("--ckpt-minutes", type=float, default=5)
    ap.add_argument("--final-contexts", default="512,4096", help="full held-out evals at the end")
    ap.add_argument("--eval", action="store_true", help="evaluate the saved model")
    ap.add_argument("--eval-contexts", default="512,4096")
    ap.add_argument("--export-from", help="export the model files from this checkpoint")
    ap.add_argument("--export-fixture", action="store_true")
    ap.add_argument("--fixture-offset", type=int, default=200000)
    ap.add_argument("--fixture-len", type=int, default=256)
    ap.add_argument("--fixture-dir", default=os.path.join(ROOT, "tests", "data", "lm"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    def log(msg):
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    heldout_path = os.path.join(a.data, "heldout.txt")

    if a.export_fixture:
        model, meta = load_model(a.model_dir)
        with open(heldout_path, "rb") as f:
            raw = f.read()[a.fixture_offset:a.fixture_offset + a.fixture_len]
        assert len(raw) == a.fixture_len
        x = torch.tensor(list(raw), dtype=torch.int64)[None]
        with torch.no_grad():
            logits = model(x)[0].float()
        nll = F.cross_entropy(logits[:-1], x[0, 1:]).item()
        os.makedirs(a.fixture_dir, exist_ok=True)
        with open(os.path.join(a.fixture_dir, "fixture_text.bin"), "wb") as f:
            f.write(raw)
        np.save(os.path.join(a.fixture_dir, "fixture_logits.npy"), logits.numpy().astype(np.float32))
        fm = {"source": "heldout.txt (persuasion, scripts/lm/extract_austen.py)", "offset": a.fixture_offset,
              "length": a.fixture_len, "bpb": round(nll / math.log(2), 6),
              "logits_abs_max": round(float(logits.abs().max()), 4),
              "model": os.path.relpath(os.path.join(a.model_dir, "model.json"), ROOT),
              "command": "scripts/lm/train.py --export-fixture" + (
                  f" --fixture-offset {a.fixture_offset}" if a.fixture_offset != 200000 else "")}
        with open(os.path.join(a.fixture_dir, "fixture_meta.json"), "w") as f:
            json.dump(fm, f, indent=1)
            f.write("\n")
        log(f"fixture: {a.fixture_len} bytes at offset {a.fixture_offset}, bpb {fm['bpb']}, "
            f"|logit| max {fm['logits_abs_max']} -> {a.fixture_dir}")
        return

    if a.eval:
        model, meta = load_model(a.model_dir)
        heldout = read_bytes(heldout_path)
        final_eval(model, heldout, [int(t) for t in a.eval_contexts.split(",")], log)
        return

    if a.export_from:
        ck = torch.load(a.export_from)
        model = LM(ck["config"])
        model.load_state_dict(ck["model"])
        half_round_(model)
        export_model(model, a.model_dir, {"command": " ".join(shlex.quote(s) for s in sys.argv),
                                          "note": f"exported from checkpoint phase {ck['phase']} step {ck['step']}"})
        log(f"exported {a.export_from} -> {a.model_dir}")
        return

    # training
    torch.manual_seed(a.seed)
    data = read_bytes(os.path.join(a.data, "train.txt"))
    heldout = read_bytes(heldout_path)
    c = default_config(a)
    model = LM(c)
    model.init_weights(a.seed)
    nparam = sum(p.numel() for p in model.parameters())
    log(f"config {c}, {nparam} parameters; train {data.numel()} bytes, heldout {heldout.numel()} bytes")
    cmd = " ".join(shlex.quote(s) for s in ["scripts/lm/train.py"] + sys.argv[1:])
    t_all = time.time()
    phases = []
    ckpt = os.path.join(a.ckpt_dir, "ckpt.pt")
    opt = make_opt(model, a, a.lr1)
    if a.minutes1 > 0:
        phases.append(run_phase(model, opt, data, heldout, a, 1, a.ctx1, a.batch1, a.minutes1, a.lr1,
                                a.warmup1, a.seed, ckpt, log))
        log(f"phase 1 done: {phases[-1]}")
    if a.minutes2 > 0:
        opt = make_opt(model, a, a.lr2)  # fresh moments for the new context
        phases.append(run_phase(model, opt, data, heldout, a, 2, a.ctx2, a.batch2, a.minutes2, a.lr2,
                                a.warmup2, a.seed + 1, ckpt, log))
        log(f"phase 2 done: {phases[-1]}")
    half_round_(model)
    training = {"command": cmd, "seed": a.seed, "threads": a.threads, "torch": torch.__version__,
                "retrieval_share": a.retrieval_share, "answer_weight": a.answer_weight,
                "data": {"train": "train.txt: sensesensibility + prideprejudice + mansfieldpark + emma + "
                                  "northangerabbey (scripts/lm/extract_austen.py)", "train_bytes": data.numel(),
                         "heldout": "persuasion", "heldout_bytes": heldout.numel()},
                "optimizer": {"name": "AdamW", "betas": [0.9, 0.95], "weight_decay": a.wd, "clip": a.clip,
                              "schedule": "linear warmup (steps), then cosine over the phase's wall-clock "
                                          "budget down to lr_floor * peak", "lr_floor": a.lr_floor},
                "parameters": nparam, "phases": phases,
                "train_minutes": round((time.time() - t_all) / 60, 2)}
    export_model(model, a.model_dir, training)  # usable even if the evals below are interrupted
    log(f"exported {a.model_dir} (pre-eval)")
    training["heldout_bpb"] = final_eval(model, heldout, [int(t) for t in a.final_contexts.split(",") if t], log)
    training["heldout_bpb_note"] = ("fp16-rounded weights, float32 arithmetic, non-overlapping windows of the "
                                    "context length over the whole held-out novel")
    export_model(model, a.model_dir, training)
    log(f"exported {a.model_dir}")


if __name__ == "__main__":
    main()
