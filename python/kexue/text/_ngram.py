"""kexue.text.NGramLM: the compiled interpolated Kneser-Ney model."""
from __future__ import annotations

import os

import numpy as np

from .. import _core
from .._util import check_int


def _flat(op, name, seqs):
    """A list of 1-D int sequences -> (tokens int64 [total], offsets int64 [n + 1])."""
    if isinstance(seqs, np.ndarray) and seqs.ndim == 2:
        if seqs.dtype.kind in "iu" and (seqs.dtype.kind == "i" or not seqs.size or seqs.max() <= 2**62):
            n, L = seqs.shape
            return (np.ascontiguousarray(seqs.reshape(-1), np.int64), np.arange(n + 1, dtype=np.int64) * L)
        seqs = list(seqs)
    if isinstance(seqs, (str, bytes)) or not hasattr(seqs, "__len__"):
        raise TypeError(f"[kexue.{op}] {name} must be a list of integer sequences; got {type(seqs).__name__}")
    fast = _flat_fast(seqs)
    if fast is not None:
        return fast
    arrs = []
    for i, s in enumerate(seqs):
        try:
            a = np.asarray(s)
        except (TypeError, ValueError):
            raise ValueError(f"[kexue.{op}] {name}[{i}] must be a 1-D sequence of token ids; got {s!r}") from None
        if a.size == 0:
            a = a.reshape(0).astype(np.int64)
        if a.ndim != 1:
            raise ValueError(f"[kexue.{op}] {name}[{i}] must be a 1-D sequence of token ids; got shape {a.shape}")
        if a.dtype.kind not in "iu":
            raise TypeError(f"[kexue.{op}] {name}[{i}] must hold integer token ids; got {a.dtype}")
        if a.dtype.kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
            raise IndexError(f"[kexue.{op}] {name}[{i}] holds a token id beyond int64")
        arrs.append(a.astype(np.int64, copy=False))
    offsets = np.zeros(len(arrs) + 1, np.int64)
    if arrs:
        np.cumsum([a.size for a in arrs], out=offsets[1:])
    tokens = np.concatenate(arrs) if arrs else np.zeros(0, np.int64)
    return np.ascontiguousarray(tokens, np.int64), offsets


def _flat_fast(seqs):
    """The common cases (1-D integer arrays or lists of ints) in one
    concatenation. None: take the checked path (which also names what is
    wrong)."""
    if not len(seqs) or isinstance(seqs[0], (str, bytes)):
        return None
    if type(seqs) is list and isinstance(seqs[0], np.ndarray):
        got = _core.text_flatten(seqs)  # int64 arrays: one C++ pass
        if got is not None:
            return got
    try:
        tokens = np.concatenate(seqs)
        lens = np.fromiter(map(len, seqs), np.int64, len(seqs))
    except (TypeError, ValueError):
        return None
    if tokens.ndim != 1 or tokens.size != lens.sum() or tokens.dtype.kind not in "iu":
        return None
    if tokens.dtype.kind == "u" and tokens.size and tokens.max() > 2**62:
        return None
    offsets = np.zeros(len(seqs) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    return np.ascontiguousarray(tokens, np.int64), offsets


class NGramLM:
    """An n-gram language model with interpolated Kneser-Ney smoothing, in C++.

    Token ids 0..V-1 are the vocabulary; the model adds begin (``bos = V + 1``,
    context only) and end of sentence (``eos = V``). Orders 2..5. One
    discount per order, ``D_m = n1 / (n1 + 2 n2)``; the highest order and the
    n-grams that start a sentence use raw counts, the others continuation
    counts; the unigrams interpolate with the uniform distribution over the
    V + 1 outputs, so every conditional sums to 1 (docs in
    ``kexue.reference.text``, whose pure-Python twin gives the same bits).

    Build with :meth:`fit` (token ids) or :meth:`fit_text` (strings).

    Examples
    --------
    >>> import numpy as np, kexue
    >>> lm = kexue.text.NGramLM.fit([[0, 1, 2], [0, 1, 1, 2]], order=2)
    >>> lm.vocab_size, lm.eos
    (3, 3)
    >>> round(float(np.exp(lm.next_logprobs([[0]])[0]).sum()), 12)
    1.0
    """

    def __init__(self, model, vocab=None):
        self._m = model
        self.vocab = vocab
        self._index = None if vocab is None else {w: i for i, w in enumerate(vocab)}

    # ------------------------------------------------------------ building
    @classmethod
    def fit(cls, sentences, order=3, vocab_size=None):
        """Count ``sentences`` (a list of integer sequences, ids >= 0).

        vocab_size defaults to max id + 1; a larger one reserves ids never seen
        (they get the uniform share of the probability).
        """
        op = "text.NGramLM.fit"
        order = check_int(op, "order", order)
        if not 2 <= order <= 5:
            raise ValueError(f"[kexue.{op}] order must be in [2, 5]; got {order}")
        tokens, offsets = _flat(op, "sentences", sentences)
        if offsets.size < 2:
            raise ValueError(f"[kexue.{op}] sentences must hold at least one sentence")
        if tokens.size and tokens.min() < 0:
            raise IndexError(f"[kexue.{op}] sentences must hold token ids >= 0; got {tokens.min()}")
        top = int(tokens.max()) + 1 if tokens.size else 1
        if vocab_size is None:
            V = top
        else:
            V = check_int(op, "vocab_size", vocab_size)
            if V < top:
                raise IndexError(f"[kexue.{op}] vocab_size ({V}) must exceed every token id (max {top - 1})")
        return cls(_core.NGramModel.fit(tokens, offsets, order, V))

    @classmethod
    def fit_text(cls, lines, tokenizer=str.split, order=3):
        """Build the vocabulary from ``lines`` (strings) and fit on their ids.

        Ids go by descending frequency, ties by first appearance;
        :attr:`vocab` lists the words, :meth:`encode` / :meth:`decode` map.
        """
        op = "text.NGramLM.fit_text"
        if isinstance(lines, str):
            raise TypeError(f"[kexue.{op}] lines must be an iterable of strings, not one string")
        if not callable(tokenizer):
            raise TypeError(f"[kexue.{op}] tokenizer must be callable")
        words = [list(tokenizer(line)) for line in lines]
        counts = {}
        for ws in words:
            for w in ws:
                counts[w] = counts.get(w, 0) + 1
        first = {w: i for i, w in enumerate(counts)}
        vocab = sorted(counts, key=lambda w: (-counts[w], first[w]))
        index = {w: i for i, w in enumerate(vocab)}
        sents = [np.fromiter((index[w] for w in ws), np.int64, len(ws)) for ws in words]
        lm = cls.fit(sents, order=order, vocab_size=max(len(vocab), 1))
        lm.vocab = vocab
        lm._index = index
        return lm

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save` (ValueError if corrupt, truncated or foreign)."""
        vocab = None
        vpath = os.fspath(path) + ".vocab"
        m = _core.NGramModel.load(os.fspath(path))
        if os.path.exists(vpath):
            with open(vpath, encoding="utf-8") as f:
                vocab = f.read().split("\n")[:-1]
            if len(vocab) != m.vocab_size:
                raise ValueError(f"[kexue.text.NGramLM.load] {vpath} lists {len(vocab)} words; the model has "
                                 f"{m.vocab_size}")
        return cls(m, vocab)

    def save(self, path):
        """Write the model to ``path`` (and its vocabulary, if any, to ``path + '.vocab'``).

        Format (little-endian): ``b"KXNGRAM\\0"``, uint32 version (1), uint32
        order, int64 V, int64 n_contexts, int64 n_entries; int32 parent and
        int32 first token of contexts 1..n_contexts-1 (a context is its parent
        with one more token in front; context 0 is empty); int32 context,
        int32 token and int64 adjusted count of every entry, sorted; uint64
        FNV-1a-64 of all the bytes before it. Loading checks the sizes, the
        order of the tables and the checksum.

        >>> import os, tempfile
        >>> lm = kexue.text.NGramLM.fit([[0, 1], [0]], order=2)
        >>> path = os.path.join(tempfile.mkdtemp(), "lm.kxlm")
        >>> lm.save(path)
        >>> bool(kexue.text.NGramLM.load(path).logprob([[0, 1]])[0] == lm.logprob([[0, 1]])[0])
        True
        """
        self._m.save(os.fspath(path))
        if self.vocab is not None:
            with open(os.fspath(path) + ".vocab", "w", encoding="utf-8") as f:
                f.write("".join(w + "\n" for w in self.vocab))

    # ------------------------------------------------------------ queries
    @property
    def order(self):
        return self._m.order

    @property
    def vocab_size(self):
        """V: the tokens are 0..V-1."""
        return self._m.vocab_size

    @property
    def eos(self):
        return self._m.vocab_size

    @property
    def bos(self):
        return self._m.vocab_size + 1

    @property
    def discounts(self):
        """[D_1, .., D_N]."""
        return list(self._m.discounts)

    @property
    def n_ngrams(self):
        return self._m.n_ngrams

    def logprob(self, seqs):
        """log p(sentence) for each of ``seqs`` (1-D integer sequences) -> float64 [n].

        Includes the end of sentence: sum over t = 0..n of log p(x_t | BOS, x_<t),
        summed in order.

        >>> lm = kexue.text.NGramLM.fit([[0, 1], [0]], order=2)
        >>> np.exp(lm.logprob([[0, 1], []])).round(6)   # 0.775 * 0.35 * 0.7; p(end | BOS)
        array([0.189875, 0.15    ])
        """
        tokens, offsets = _flat("text.NGramLM.logprob", "seqs", seqs)
        return self._m.logprob(tokens, offsets)

    def position_logprobs(self, seq):
        """log p(x_t | history) of each position t = 0..n of one sentence (n: end) -> [n + 1]."""
        tokens, _ = _flat("text.NGramLM.position_logprobs", "seq", [seq])
        return self._m.position_logprobs(tokens)

    def next_logprobs(self, prefixes):
        """log p(w | prefix) for every w -> float64 [n, V + 1] (column V: end of sentence).

        >>> lm = kexue.text.NGramLM.fit([[0, 1], [0]], order=2)
        >>> np.exp(lm.next_logprobs([[0]])).round(6)    # p(0 | 0), p(1 | 0), p(end | 0)
        array([[0.15, 0.35, 0.5 ]])
        """
        tokens, offsets = _flat("text.NGramLM.next_logprobs", "prefixes", prefixes)
        return self._m.next_logprobs(tokens, offsets)

    def topk(self, prefix, k):
        """The k most likely next tokens (end excluded) by (log p desc, id asc) -> int32 [k].

        Exact without scoring every token: the tokens seen after the context,
        then the next-shorter context's order (cached per thread).

        >>> lm = kexue.text.NGramLM.fit([[0, 1], [0]], order=2)
        >>> lm.topk([0], 2)
        array([1, 0], dtype=int32)
        """
        tokens, _ = _flat("text.NGramLM.topk", "prefix", [prefix])
        return self._m.topk(tokens, check_int("text.NGramLM.topk", "k", k))

    # ------------------------------------------------------------ words
    def encode(self, words):
        """Words (a list, or a string split on whitespace) -> int64 ids; KeyError on an unknown word.

        >>> lm = kexue.text.NGramLM.fit_text(["the cat sat", "the dog sat"], order=2)
        >>> lm.encode("the dog"), lm.decode([0, 3])
        (array([0, 3]), 'the dog')
        """
        if self._index is None:
            raise ValueError("[kexue.text.NGramLM.encode] this model has no vocabulary (built by fit, not fit_text)")
        if isinstance(words, str):
            words = words.split()
        out = []
        for w in words:
            if w not in self._index:
                raise KeyError(f"[kexue.text.NGramLM.encode] word {w!r} is not in the vocabulary")
            out.append(self._index[w])
        return np.asarray(out, np.int64)

    def decode(self, ids):
        """int ids -> the words joined by spaces."""
        if self.vocab is None:
            raise ValueError("[kexue.text.NGramLM.decode] this model has no vocabulary (built by fit, not fit_text)")
        return " ".join(self.vocab[int(i)] for i in ids)

    def __repr__(self):
        return (f"NGramLM(order={self.order}, vocab_size={self.vocab_size}, n_ngrams={self.n_ngrams}, "
                f"discounts={[round(d, 4) for d in self.discounts]})")
