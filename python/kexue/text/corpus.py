"""A template-grammar corpus for kexue.text's demos, tests and benches.

Nothing here is copied text: sentences are drawn from a small grammar whose
lexicons hold a few hundred common English words followed by pseudo-words
built from consonant-vowel syllables ("bakoru", "tefimed"). Each sentence
picks one of a few dozen templates -- sequences of slots such as
``DET ADJ NOUN VERB PREP DET NOUN`` -- and fills every slot from its lexicon
with a Zipf-distributed rank (exponent 1.05), so a few words are frequent
and most are rare, as in real text. Clauses can be joined by a conjunction.

The lexicons are fixed (their own seed), the sentence choices follow
``seed``: ``generate(300_000)`` has a vocabulary of about 50,000 words,
``generate(20_000)`` a few thousand. Word classes: determiners, numbers,
adjectives, nouns, names, verbs (past tense), adverbs, prepositions and
conjunctions.

Command line: ``python -m kexue.text.corpus OUT.txt --sentences 300000 --seed 0``
writes one sentence per line.
"""
from __future__ import annotations

import argparse
import functools

import numpy as np

_REAL = {
    "DET": "the a this that every some my our their each no one".split(),
    "NUM": "two three four five six seven eight nine ten many few several".split(),
    "ADJ": ("red small quick old new big little young green dark bright quiet happy cold warm tall "
            "brown long short strange lazy busy heavy soft sharp white black blue clever gentle").split(),
    "NOUN": ("cat dog mat house river tree garden door window road city child bird table book "
             "chair hill boat field stone king man woman friend teacher song letter lamp cup fox "
             "horse ship bridge forest market room wall sky cloud rain star moon sun").split(),
    "NAME": "anna ben clara david ella frank grace henry iris jack".split(),
    "VERB": ("sat saw found took made left watched followed met called carried painted heard "
             "opened closed loved helped built moved pushed pulled kept lost chased").split(),
    "ADV": "quickly slowly quietly often never always soon again gently carefully".split(),
    "PREP": "on in under near with behind over beside at from to into across through".split(),
    "CONJ": "and but while because so".split(),
}

# pseudo-word counts per class (about 50k words once 300k sentences are drawn)
_PSEUDO = {"ADJ": 7000, "NOUN": 30000, "NAME": 5000, "VERB": 7000, "ADV": 2500}
_SUFFIX = {"ADJ": "ish", "NOUN": "", "NAME": "", "VERB": "ed", "ADV": "ly"}

_TEMPLATES = [
    "DET ADJ NOUN VERB PREP DET NOUN",
    "DET NOUN VERB DET ADJ NOUN ADV",
    "NAME VERB DET NOUN PREP DET ADJ NOUN",
    "DET NOUN PREP DET NOUN VERB ADV",
    "NUM ADJ NOUN VERB PREP NAME",
    "NAME ADV VERB DET ADJ ADJ NOUN",
    "DET ADJ NOUN VERB DET NOUN PREP DET NOUN",
    "NAME VERB NAME PREP DET ADJ NOUN",
    "DET NOUN VERB",
    "NAME VERB DET NOUN",
    "DET NOUN ADV VERB DET NOUN",
    "NUM NOUN VERB DET ADJ NOUN PREP DET NOUN",
    "DET NOUN VERB DET NOUN CONJ DET NOUN VERB DET NOUN",
    "NAME VERB DET ADJ NOUN CONJ NAME VERB ADV",
    "DET ADJ NOUN VERB ADV CONJ DET NOUN VERB PREP DET NOUN",
    "PREP DET ADJ NOUN DET NOUN VERB NAME",
    "DET NOUN PREP NAME VERB DET NUM NOUN",
    "NAME CONJ NAME VERB DET ADJ NOUN",
]

_LEXICON_SEED = 20261122


def _pseudo_words(n: int, rng: np.random.Generator, taken: set) -> list:
    cons = list("bdfgklmnprstvz")
    vows = list("aeiou")
    syl = np.array([c + v for c in cons for v in vows] + [""], dtype=object)
    out = []
    while len(out) < n:
        m = 2 * (n - len(out)) + 16
        idx = rng.integers(0, len(syl) - 1, (m, 3))
        idx[rng.random(m) < 0.5, 2] = len(syl) - 1  # two or three syllables
        for w in (syl[idx[:, 0]] + syl[idx[:, 1]] + syl[idx[:, 2]]).tolist():
            if w not in taken:
                taken.add(w)
                out.append(w)
                if len(out) == n:
                    break
    return out


def lexicons() -> dict:
    """The word lists of every slot, most frequent first (fixed, seed-independent).

    >>> from kexue.text import corpus
    >>> lex = corpus.lexicons()
    >>> lex["NOUN"][:3], len(lex["NOUN"]) > 30000
    (['cat', 'dog', 'mat'], True)
    >>> sorted(lex)
    ['ADJ', 'ADV', 'CONJ', 'DET', 'NAME', 'NOUN', 'NUM', 'PREP', 'VERB']
    """
    return {cls: list(words) for cls, words in _lexicons().items()}


@functools.lru_cache(maxsize=1)
def _lexicons() -> dict:
    rng = np.random.default_rng(_LEXICON_SEED)
    taken = {w for ws in _REAL.values() for w in ws}
    lex = {}
    for cls, words in _REAL.items():
        extra = []
        if cls in _PSEUDO:
            extra = [w + _SUFFIX[cls] for w in _pseudo_words(_PSEUDO[cls], rng, taken)]
            taken.update(extra)
        lex[cls] = tuple(words) + tuple(extra)
    return lex


def _zipf_probs(n: int, s: float = 1.05) -> np.ndarray:
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    return p / p.sum()


def generate(n_sentences: int = 300_000, seed: int = 0) -> list:
    """``n_sentences`` whitespace-tokenised lowercase sentences (deterministic in ``seed``).

    >>> from kexue.text import corpus
    >>> lines = corpus.generate(3, seed=0)
    >>> len(lines), all(isinstance(s, str) and s for s in lines)
    (3, True)
    """
    if isinstance(n_sentences, bool) or not isinstance(n_sentences, (int, np.integer)) or n_sentences < 0:
        raise ValueError(f"[kexue.text.corpus.generate] n_sentences must be an int >= 0; got {n_sentences!r}")
    rng = np.random.default_rng(seed)
    lex = _lexicons()
    arrays = {cls: np.array(words, dtype=object) for cls, words in lex.items()}
    probs = {cls: _zipf_probs(len(words)) for cls, words in lex.items()}
    which = rng.integers(0, len(_TEMPLATES), n_sentences)
    out = [None] * n_sentences
    for j, tpl in enumerate(_TEMPLATES):
        rows = np.flatnonzero(which == j)
        if rows.size == 0:
            continue
        cols = []
        for cls in tpl.split():
            idx = rng.choice(len(arrays[cls]), size=rows.size, p=probs[cls])
            cols.append(arrays[cls][idx])
        for r, words in zip(rows.tolist(), zip(*cols)):
            out[r] = " ".join(words)
    return out


def write(path, n_sentences: int = 300_000, seed: int = 0) -> int:
    """Write ``generate(n_sentences, seed)`` to ``path``, one sentence per line; returns the count.

    >>> import os, tempfile
    >>> from kexue.text import corpus
    >>> path = os.path.join(tempfile.mkdtemp(), "corpus.txt")
    >>> corpus.write(path, 10, seed=1)
    10
    """
    lines = generate(n_sentences, seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
        f.write("\n")
    return len(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kexue.text.corpus",
                                 description="Write kexue's template-grammar corpus (one sentence per line).")
    ap.add_argument("out", help="output file")
    ap.add_argument("--sentences", type=int, default=300_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    n = write(a.out, a.sentences, a.seed)
    print(f"wrote {n} sentences to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
