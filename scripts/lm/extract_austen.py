#!/usr/bin/python3
"""Extract the six Jane Austen novels of Debian's r-cran-janeaustenr as plain UTF-8 text, without R.

The package's data lives in an R lazy-load database: `data/Rdata.rdx` (a gzip-compressed serialized
R list mapping each object name to an [offset, length] pair in `data/Rdata.rdb`) and `data/Rdata.rdb`
(records of a 4-byte big-endian uncompressed length followed by zlib data, each an R-serialized
object). Each novel is a character vector of lines; we join them with "\\n" (plus a final newline).

Output (``--out DIR``): DIR/<novel>.txt for all six, DIR/train.txt (the five training novels
concatenated in TRAIN_ORDER) and DIR/heldout.txt (HELDOUT, "persuasion"). Deterministic.

Usage: scripts/lm/extract_austen.py --out /tmp/austen [--pkg /usr/lib/R/site-library/janeaustenr]
"""
import argparse
import bz2
import gzip
import hashlib
import lzma
import os
import struct
import sys
import zlib

NOVELS = ["sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion"]
HELDOUT = "persuasion"
TRAIN_ORDER = [n for n in NOVELS if n != HELDOUT]


class RObj:
    """A generic R object: type code, value, attributes (dict name -> value)."""

    def __init__(self, sxp, value, attrs=None):
        self.sxp, self.value, self.attrs = sxp, value, attrs or {}

    def __repr__(self):
        return f"RObj({self.sxp}, {type(self.value).__name__}, attrs={list(self.attrs)})"


class Unserializer:
    """Just enough of R's XDR serialization (versions 2 and 3) for data objects."""

    def __init__(self, data):
        self.d, self.p, self.refs = data, 0, []

    def take(self, n):
        if self.p + n > len(self.d):
            raise ValueError("truncated R serialization")
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def run(self):
        fmt = self.take(2)
        if fmt != b"X\n":
            raise ValueError(f"unsupported R serialization format {fmt!r} (only XDR)")
        version = self.int()
        self.int()  # writer R version
        self.int()  # minimal reader version
        if version == 3:
            self.take(self.int())  # native encoding name
        elif version != 2:
            raise ValueError(f"unsupported serialization version {version}")
        return self.item()

    def length(self):
        n = self.int()
        if n == -1:
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def pairlist_to_dict(self, obj):
        out = {}
        while isinstance(obj, RObj) and obj.sxp in (2, 239):
            tag, car = obj.value[0], obj.value[1]
            out[tag if isinstance(tag, str) else str(len(out))] = car
            obj = obj.value[2]
        return out

    def item(self):
        flags = self.int()
        t = flags & 0xFF
        has_attr, has_tag = bool(flags & 512), bool(flags & 1024)
        if t == 254 or t == 0:  # NILVALUE_SXP / NILSXP
            return None
        if t in (253, 252, 251, 250, 242, 241):  # special environments / markers
            return RObj(t, None)
        if t == 255:  # REFSXP
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            return self.refs[idx - 1]
        if t in (247, 249, 248):  # PERSISTSXP, NAMESPACESXP, PACKAGESXP: STRSXP-like info
            self.int()  # always 0
            n = self.int()
            obj = RObj(t, [self.item() for _ in range(n)])
            self.refs.append(obj)
            return obj
        if t == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if t == 4:  # ENVSXP
            obj = RObj(4, None)
            self.refs.append(obj)
            self.int()  # locked
            enclos, frame, hashtab, attrib = self.item(), self.item(), self.item(), self.item()
            obj.value = (enclos, frame, hashtab)
            obj.attrs = self.pairlist_to_dict(attrib)
            return obj
        if t in (2, 3, 5, 6, 17, 239, 240):  # pairlist-like: [attr] [tag] car cdr
            attrib = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car = self.item()
            cdr = self.item()
            obj = RObj(2 if t == 239 else (6 if t == 240 else t), (tag, car, cdr))
            if attrib is not None:
                obj.attrs = self.pairlist_to_dict(attrib)
            return obj
        if t == 238:  # ALTREP_SXP: info, state, attr
            info, state, attr = self.item(), self.item(), self.item()
            return RObj(238, (info, state), self.pairlist_to_dict(attr))
        if t == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None  # NA_STRING
            raw = self.take(n)
            enc = "latin-1" if flags & (1 << 14) else "utf-8"  # LATIN1_MASK is 1<<2 in levels (flags>>12)
            return raw.decode(enc, errors="replace")
        if t in (10, 13):  # LGLSXP, INTSXP
            n = self.length()
            value = list(struct.unpack(f">{n}i", self.take(4 * n)))
        elif t == 14:  # REALSXP
            n = self.length()
            value = list(struct.unpack(f">{n}d", self.take(8 * n)))
        elif t == 15:  # CPLXSXP
            n = self.length()
            value = list(struct.unpack(f">{2 * n}d", self.take(16 * n)))
        elif t == 16:  # STRSXP
            n = self.length()
            value = [self.item() for _ in range(n)]
        elif t in (19, 20):  # VECSXP, EXPRSXP
            n = self.length()
            value = [self.item() for _ in range(n)]
        elif t == 24:  # RAWSXP
            value = self.take(self.length())
        elif t == 25:  # S4SXP
            value = None
        elif t in (7, 8):  # SPECIALSXP, BUILTINSXP
            value = self.take(self.int()).decode()
        else:
            raise ValueError(f"unsupported SEXP type {t} at byte {self.p}")
        obj = RObj(t, value)
        if has_attr:
            obj.attrs = self.pairlist_to_dict(self.item())
        return obj


def unserialize(data):
    return Unserializer(data).run()


def decompress_record(rec):
    """A lazy-load record: 4-byte BE uncompressed length, then (type byte for bzip2/xz) compressed data."""
    (n,) = struct.unpack(">I", rec[:4])
    body = rec[4:]
    if body[:1] == b"x":  # zlib header (compression type 1, the default)
        out = zlib.decompress(body)
    elif body[:1] == b"Z":
        out = zlib.decompress(body[1:])
    elif body[:1] == b"2":
        out = bz2.decompress(body[1:])
    elif body[:1] == b"X":
        out = lzma.decompress(body[1:])
    elif body[:1] == b"0":
        out = body[1:]
    else:
        raise ValueError(f"unknown lazy-load compression byte {body[:1]!r}")
    if len(out) != n:
        raise ValueError(f"record length {len(out)} != header {n}")
    return out


def named_list(obj):
    names = obj.attrs.get("names")
    return dict(zip(names.value, obj.value))


def load_lazy_db(base):
    """Return {name: R object} for every variable of the lazy-load DB base.rdx/base.rdb."""
    with open(base + ".rdx", "rb") as f:
        raw = f.read()
    raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else decompress_record(raw)
    index = named_list(unserialize(raw))
    variables = named_list(index["variables"])
    with open(base + ".rdb", "rb") as f:
        db = f.read()
    out = {}
    for name, pos in variables.items():
        off, ln = (int(v) for v in pos.value)
        out[name] = unserialize(decompress_record(db[off:off + ln]))
    return out


def novel_text(obj):
    if not (isinstance(obj, RObj) and obj.sxp == 16):
        raise ValueError(f"expected a character vector, got {obj!r}")
    lines = ["" if s is None else s for s in obj.value]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pkg", default="/usr/lib/R/site-library/janeaustenr",
                    help="installed janeaustenr package directory")
    ap.add_argument("--out", required=True, help="output directory")
    args = ap.parse_args()

    objs = load_lazy_db(os.path.join(args.pkg, "data", "Rdata"))
    missing = [n for n in NOVELS if n not in objs]
    if missing:
        sys.exit(f"extract_austen: novels not found in the package data: {missing} (have {sorted(objs)})")
    os.makedirs(args.out, exist_ok=True)
    texts = {}
    for n in NOVELS:
        texts[n] = novel_text(objs[n]).encode("utf-8")

    def write(name, data):
        path = os.path.join(args.out, name)
        with open(path, "wb") as f:
            f.write(data)
        print(f"{path}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}")

    for n in NOVELS:
        write(n + ".txt", texts[n])
    write("train.txt", b"".join(texts[n] for n in TRAIN_ORDER))
    write("heldout.txt", texts[HELDOUT])
    print(f"held out: {HELDOUT}; train: {' + '.join(TRAIN_ORDER)}")


if __name__ == "__main__":
    main()
