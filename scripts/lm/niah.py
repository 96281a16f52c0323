"""Retrieval tasks of docs/lm.md ("Retrieval tasks"): the needle and question formats, shared by
the trainer (scripts/lm/train.py mixes them into training windows) and the evaluation
(scripts/lm-niah builds haystacks from the held-out novel). Standard library only, so that the
evaluation needs no NumPy or PyTorch.

The formats are a contract for outside probes, written once here and in docs/lm.md:
  needle, inserted at a line break:  "The secret code for NAME is DDDDD.\n"
  question, at the end:              "Question: what is the secret code for NAME?\nAnswer: DDDDD.\n"
NAME is one word of the list in docs/lm.md (read from there, so the document is the one source),
DDDDD five random decimal digits.
"""
import os
import random
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "lm.md")
_MARK = "<!-- needle-words -->"


def load_words(doc=DOC):
    """The needle names: the paragraph between the two needle-words markers of docs/lm.md."""
    with open(doc, encoding="utf-8") as f:
        text = f.read()
    parts = text.split(_MARK)
    if len(parts) != 3:
        raise ValueError(f"{doc}: expected the word list between two '{_MARK}' lines")
    words = parts[1].split()
    bad = [w for w in words if not re.fullmatch(r"[a-z]+", w)]
    if bad or len(set(words)) != len(words) or len(words) < 200:
        raise ValueError(f"{doc}: the needle words must be >= 200 distinct lower-case words (bad: {bad[:5]})")
    return words


def needle(name, code):
    return f"The secret code for {name} is {code}.\n".encode()


def question(name):
    """The question up to the answer's first digit: what a prompt ends with."""
    return f"Question: what is the secret code for {name}?\nAnswer: ".encode()


def answer(code):
    return f"{code}.\n".encode()


def random_code(rng):
    return "".join(rng.choice("0123456789") for _ in range(5))


def _line_starts(hay):
    """Offsets where a line starts: 0 and every offset just after a newline (insertion points)."""
    return [0] + [i + 1 for i, b in enumerate(hay) if b == 0x0A]


def haystack(text, rng, n):
    """n bytes of text from a random line start, ending with a newline (so the end is a line break too)."""
    if n < 1:
        raise ValueError("the haystack must hold at least one byte: the context is too short for the needles")
    if len(text) < n + 2:
        raise ValueError(f"the text ({len(text)} bytes) is shorter than the haystack ({n} bytes)")
    for _ in range(1000):
        off = rng.randrange(0, len(text) - n)
        if off == 0 or text[off - 1] == 0x0A:
            break
    else:
        off = 0
    return text[off:off + n - 1] + b"\n"


def insert_needles(hay, needles, depths):
    """Inserts each needle bytes at the line start nearest to depth * len(hay) (depth in [0, 1]);
    two needles never share an insertion point when the haystack has enough lines."""
    starts = _line_starts(hay)
    used, at = set(), []
    for d in depths:
        target = d * len(hay)
        order = sorted(range(len(starts)), key=lambda i: (abs(starts[i] - target), starts[i]))
        pick = next((starts[i] for i in order if starts[i] not in used), starts[order[0]])
        used.add(pick)
        at.append(pick)
    out = bytearray(hay)
    for pos, nd in sorted(zip(at, needles), key=lambda t: -t[0]):
        out[pos:pos] = nd
    return bytes(out)


def eval_trial(text, rng, words, context, depth, variant):
    """One evaluation trial of `variant`:
      single: one needle at `depth`; the question asks it.
      multi4: four needles, the asked one at `depth`, the other three at uniform random depths.
      twoq:   two needles, the first asked at `depth`, the second at a uniform random depth; the
              prompt asks the first, and the second question is a later turn (fed after the first
              answer is generated: `tca lm-generate --then-file`).
    Returns (prompt bytes, second-turn bytes or None, expected answers [codes]); the prompt is
    exactly `context` bytes long."""
    n = {"single": 1, "multi4": 4, "twoq": 2}[variant]
    names = rng.sample(words, n)
    codes = [random_code(rng) for _ in names]
    depths = [depth] + [rng.random() for _ in range(n - 1)]
    needles = [needle(nm, c) for nm, c in zip(names, codes)]
    tail = question(names[0])
    hay_len = context - sum(len(x) for x in needles) - len(tail)
    hay = insert_needles(haystack(text, rng, hay_len), needles, depths)
    prompt = hay + tail
    assert len(prompt) == context, (len(prompt), context)
    if variant == "twoq":
        return prompt, question(names[1]), [codes[0], codes[1]]
    return prompt, None, [codes[0]]


def training_window(text, rng, words, length):
    """A training window of exactly `length` bytes with retrieval tasks mixed in: one to four needles
    at uniform random depths, then a question about one of them with its answer; in a third of the
    windows with two or more needles a second question about another needle follows (a second turn)."""
    n = rng.randint(1, 4)
    names = rng.sample(words, n)
    codes = [random_code(rng) for _ in names]
    needles = [needle(nm, c) for nm, c in zip(names, codes)]
    asked = rng.sample(range(n), 2 if n >= 2 and rng.random() < 1 / 3 else 1)
    tail = b"".join(question(names[i]) + answer(codes[i]) for i in asked)
    hay_len = length - sum(len(x) for x in needles) - len(tail)
    hay = insert_needles(haystack(text, rng, hay_len), needles, [rng.random() for _ in range(n)])
    window = hay + tail
    assert len(window) == length, (len(window), length)
    # The answer digits' offsets: the trainer may weight their loss (they are 5 of `length` bytes).
    digits, pos = [], len(hay)
    for i in asked:
        pos += len(question(names[i]))
        digits.extend(range(pos, pos + 5))
        pos += len(answer(codes[i]))
    return window, digits


def new_rng(*key):
    """A generator seeded by a tuple of ints and strings (stable across runs and Python versions)."""
    return random.Random("/".join(str(k) for k in key))
