"""ROUGE-L and CIDEr-D of the MS-COCO caption evaluator (pycocoevalcap 1.2), recomputed faster.
Owns rouge_l and cider_d: the same arithmetic in the same order, so the values equal pycocoevalcap's."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence

import numpy as np


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix / Hyyrö): one pass
    over ``a`` with integer bit operations instead of the len(a) x len(b) table."""
    if len(a) < len(b):
        a, b = b, a
    masks: dict = {}
    for j, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << j)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        m = masks.get(token, 0)
        u = v & m
        v = ((v + u) | (v - u)) & full
    return len(b) - bin(v).count("1")


def rouge_l(hyps: Sequence[str], refs: Sequence[Sequence[str]], beta: float = 1.2) -> tuple[float, list[float]]:
    """pycocoevalcap's Rouge: per segment the best precision and best recall over references
    (each maximised on its own) combined as F with beta 1.2; the corpus score is the mean."""
    scores = []
    for hyp, group in zip(hyps, refs):
        token_c = hyp.split(" ")  # split(" ") as the original: '' is one empty token
        prec, rec = [], []
        for ref in group:
            token_r = ref.split(" ")
            lcs = _lcs(token_r, token_c)
            prec.append(lcs / float(len(token_c)))
            rec.append(lcs / float(len(token_r)))
        p, r = max(prec), max(rec)
        if p != 0 and r != 0:
            scores.append(((1 + beta**2) * p * r) / float(r + beta**2 * p))
        else:
            scores.append(0.0)
    return float(np.mean(np.array(scores))), scores


def _precook(sentence: str, n: int = 4) -> dict:
    words = sentence.split()
    counts: dict = defaultdict(int)
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i:i + k])] += 1
    return counts


def cider_d(hyps: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0) -> tuple[float, list[float]]:
    """pycocoevalcap's Cider (CIDEr-D): tf-idf n-gram vectors (n = 1..4) with document
    frequencies over the reference sets being scored, clipped cosine similarity, Gaussian length
    penalty (sigma 6), mean over n, mean over references, x10; the corpus score is the mean.

    Two quirks kept on purpose: the "length" in the penalty counts *bigrams* (the original's
    ``if n == 1`` on a 0-based index), and an n-gram absent from every reference gets df 1.
    """
    crefs = [[_precook(r, n) for r in group] for group in refs]
    ctest = [_precook(h, n) for h in hyps]
    df: dict = defaultdict(float)
    for group in crefs:
        for ngram in set(ngram for ref in group for ngram in ref):
            df[ngram] += 1
    ref_len = np.log(float(len(crefs)))

    # idf of every n-gram at once; np.log on an array gives the values np.log gives one by one.
    grams = list(set(df) | set(g for t in ctest for g in t))
    logs = np.log(np.maximum(1.0, np.array([df.get(g, 0.0) for g in grams], dtype=np.float64)))
    ref_len = float(ref_len)
    idf = {g: ref_len - lg for g, lg in zip(grams, logs.tolist())}

    def counts2vec(cnts: dict):
        vec = [dict() for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for ngram, tf in cnts.items():
            k = len(ngram) - 1
            value = float(tf) * idf[ngram]
            vec[k][ngram] = value
            norm[k] += pow(value, 2)
            if k == 1:
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    penalty_den = 2 * sigma**2
    scores = []
    for test, group in zip(ctest, crefs):
        vec, norm, length = counts2vec(test)
        total = np.zeros(n)
        for ref in group:
            vec_ref, norm_ref, length_ref = counts2vec(ref)
            delta = float(length - length_ref)
            val = np.zeros(n)
            for k in range(n):
                acc = 0.0
                ref_k = vec_ref[k]
                for ngram, value in vec[k].items():
                    r = ref_k.get(ngram, 0.0)
                    acc += min(value, r) * r
                if norm[k] != 0 and norm_ref[k] != 0:
                    acc /= norm[k] * norm_ref[k]
                val[k] = acc * (np.e ** (-(delta**2) / penalty_den))
            total += val
        score = np.mean(total)
        score /= len(group)
        score *= 10.0
        scores.append(score)
    return float(np.mean(np.array(scores))), [float(s) for s in scores]
