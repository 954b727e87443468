"""BLEU and NIST as NIST's mteval-v13a.pl computes them, and BLEU as Moses' multi-bleu-detok.perl does.
Owns the 13a tokeniser; used by the E2E scorer (both metrics) and the WebNLG/DART scorer (BLEU)."""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Sequence

# Perl's \s on decoded (utf8) strings: Python's \s would also match \x1c-\x1f, Perl's does not.
_PERL_SPACE_UNI = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# multi-bleu-detok reads raw bytes, where \s is ASCII whitespace only.
_PERL_SPACE_ASCII = "\t\n\x0b\x0c\r "

# tr/[A-Z]/[a-z]/ touches ASCII letters only (str.lower would also fold É, Σ, ...).
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# s/([\{-\~\[-\` -\&\(-\+\:-\@\/])/ $1 /g pads single characters, so a translate table does it
# exactly (and much faster than a regex with a template).
_PUNCT_CHARS = [c for lo, hi in ("{~", "[`", " &", "(+", ":@", "//") for c in map(chr, range(ord(lo), ord(hi) + 1))]
_PUNCT_TABLE = str.maketrans({c: f" {c} " for c in _PUNCT_CHARS})
_PERIOD_COMMA_AFTER = re.compile(r"([^0-9])([\.,])")
_PERIOD_COMMA_BEFORE = re.compile(r"([\.,])([^0-9])")
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")


def _tokenizer(space: str):
    runs = re.compile(f"[{space}]+")

    def tokenize(text: str, lowercase: bool) -> str:
        # Same steps, same order as sub tokenization in mteval-v13a.pl / multi-bleu-detok.perl.
        text = text.replace("<skipped>", "")
        text = text.replace("-\n", "").replace("\n", " ")
        text = text.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
        text = f" {text} "
        if lowercase:
            text = text.translate(_ASCII_LOWER)
        text = text.translate(_PUNCT_TABLE)
        if "." in text or "," in text:  # the regexes keep Perl's left-to-right, non-overlapping matching
            text = _PERIOD_COMMA_AFTER.sub(r"\1 \2 ", text)
            text = _PERIOD_COMMA_BEFORE.sub(r" \1 \2", text)
        if "-" in text:
            text = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", text)
        # after the collapse every run is one space, so stripping spaces is Perl's s/^\s+//; s/\s+$//
        return runs.sub(" ", text).strip(" ")

    return tokenize, runs


_tok_uni, _RUNS_UNI = _tokenizer(_PERL_SPACE_UNI)
_tok_ascii, _RUNS_ASCII = _tokenizer(_PERL_SPACE_ASCII)


def tokenize_13a(text: str, lowercase: bool = True) -> list[str]:
    """mteval-v13a tokens of one segment as the E2E scorer's SGML path produces them.

    mteval first collapses every whitespace run in the document to one space, so a segment never
    holds a newline when tokenised; we do the same.
    """
    text = _RUNS_UNI.sub(" ", text)
    out = _tok_uni(text, lowercase)
    return out.split(" ") if out else []


def tokenize_detok(text: str) -> list[str]:
    """multi-bleu-detok.perl tokens (case kept; it reads bytes, so only ASCII counts as space)."""
    out = _tok_ascii(text, False)
    return out.split(" ") if out else []


def _ngrams(words: Sequence[str], max_n: int) -> Counter:
    """Counts of all 1..max_n-grams (tuples); zip + Counter keep the loop in C."""
    counts: Counter = Counter(zip(words))
    for n in range(2, min(max_n, len(words)) + 1):
        counts.update(zip(*[words[i:] for i in range(n)]))
    return counts


def _closest(current: int, ref_len: int, hyp_len: int) -> int:
    """mteval's brevity_penalty_closest: a zero-length reference never replaces the current one;
    on a tie the shorter length wins."""
    if not ref_len:
        return current
    if abs(hyp_len - ref_len) < abs(hyp_len - current):
        return ref_len
    if abs(hyp_len - ref_len) == abs(hyp_len - current) and current > ref_len:
        return ref_len
    return current


def _nist_length_penalty(ratio: float) -> float:
    if ratio >= 1:
        return 1.0
    if ratio <= 0:
        return 0.0
    beta = -math.log(0.5) / math.log(1.5) / math.log(1.5)
    return math.exp(-beta * math.log(ratio) * math.log(ratio))


def pad_ref_sets(refs: Sequence[Sequence[str]]) -> list[list[str]]:
    """The reference sets the E2E scorer writes to its SGML file, in the order mteval reads them.

    e2e-metrics puts the i-th reference of every group in set ``ref_i`` (pads short groups with
    ''), and mteval walks the sets in *sorted name* order: ref_0, ref_1, ref_10, ref_11, ref_2, ...
    Order matters in one place only: the first set's length seeds the closest-length search, even
    when it is 0.
    """
    width = max(len(group) for group in refs)
    order = sorted(range(width), key=lambda i: "ref" if width == 1 else f"ref_{i}")
    return [[group[i] if i < len(group) else "" for i in order] for group in refs]


def mteval_bleu_nist(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> dict:
    """Corpus BLEU (4-gram, closest reference length, mteval smoothing) and NIST (5-gram) of
    mteval-v13a.pl at its defaults (lowercased), as e2e-metrics runs it: one document, every
    segment's references in sets ref_0..ref_k padded with empty strings.

    BLEU is on the 0-1 scale. NIST's information weights come from n-gram counts over all
    references; its brevity penalty compares the system length with the average reference length
    (total reference words divided by the average number of non-empty references per segment).
    """
    hyp_toks = [tokenize_13a(h) for h in hyps]
    ref_toks = [[tokenize_13a(r) for r in group] for group in pad_ref_sets(refs)]

    # Information weights: info(w1..wn) = -log2(count(w1..wn) / count(w1..wn-1)), counts over all refs.
    ref_grams = [[_ngrams(words, 5) for words in group] for group in ref_toks]
    ref_counts: Counter = Counter()
    tot_words = 0
    for group, grams in zip(ref_toks, ref_grams):
        for words, counts in zip(group, grams):
            tot_words += len(words)
            ref_counts.update(counts)

    info_cache: dict = {}

    def info(ngram: tuple) -> float:
        value = info_cache.get(ngram)
        if value is None:
            # Perl tests the (n-1)-gram *string* for truth, so a bigram whose prefix is the word
            # "0" falls back to the unigram denominator, as in the official script.
            if len(ngram) == 1 or (len(ngram) == 2 and ngram[0] == "0"):
                denom = tot_words
            else:
                denom = ref_counts[ngram[:-1]]
            value = -math.log(ref_counts[ngram] / denom) / math.log(2)
            info_cache[ngram] = value
        return value

    match = [0] * 6
    tst_cnt = [0] * 6
    tst_info = [0.0] * 6
    ref_words = 0
    ref_count = 0
    ref_length_total = 0
    for hyp, group, grams in zip(hyp_toks, ref_toks, ref_grams):
        n_hyp = len(hyp)
        ref_max: dict = {}
        ref_length = None
        for words, counts in zip(group, grams):
            if words:  # mteval counts the non-empty reference strings (tokenised)
                ref_count += 1
            ref_words += len(words)
            for ngram, count in counts.items():
                if count > ref_max.get(ngram, 0):
                    ref_max[ngram] = count
            ref_length = len(words) if ref_length is None else _closest(ref_length, len(words), n_hyp)
        ref_length_total += ref_length or 0
        for n in range(1, 6):
            tst_cnt[n] += max(n_hyp - n + 1, 0)
        for ngram, count in _ngrams(hyp, 5).items():
            best = ref_max.get(ngram)
            if best is None:
                continue
            clipped = min(count, best)
            n = len(ngram)
            match[n] += clipped
            tst_info[n] += info(ngram) * clipped

    # BLEU: mteval's bleu_score (smoothing 1/2^k for n-gram orders with no match).
    exp_len = math.exp(min(0.0, 1 - ref_length_total / tst_cnt[1])) if tst_cnt[1] > 0 else 0.0
    smooth = 1
    log_sum = 0.0
    for n in range(1, 5):
        if tst_cnt[n] == 0:
            iscore = 0.0
        elif match[n] == 0:
            smooth *= 2
            iscore = math.log(1 / (smooth * tst_cnt[n]))
        else:
            iscore = math.log(match[n] / tst_cnt[n])
        log_sum += iscore
    bleu = math.exp(log_sum / 4) * exp_len

    # NIST over 5-grams.
    n_segs = len(hyp_toks)
    avg_refs = ref_count / n_segs
    if ref_words == 0 or avg_refs == 0:
        nist = 0.0
    else:
        penalty = _nist_length_penalty(tst_cnt[1] / (ref_words / avg_refs))
        score = 0.0
        for n in range(1, 6):
            score += tst_info[n] / max(tst_cnt[n], 1)
        nist = score * penalty
    return {"BLEU": bleu, "NIST": nist}


def multi_bleu_detok(hyps: Sequence[str], ref_streams: Iterable[Sequence[str]]) -> float:
    """BLEU (0-100) of Moses' multi-bleu-detok.perl: 13a tokens, case kept, no smoothing
    (an n-gram order with no match gives ~0), closest reference length (ties: shorter).

    ``ref_streams`` holds one list per reference file (reference0, reference1, ...), each aligned
    with ``hyps``.
    """
    streams = [list(s) for s in ref_streams]
    correct = [0] * 5
    total = [0] * 5
    len_hyp = 0
    len_ref = 0
    for i, hyp in enumerate(hyps):
        words = tokenize_detok(hyp)
        ref_max: dict = {}
        closest_diff, closest_len = 9999, 9999
        for stream in streams:
            ref_words = tokenize_detok(stream[i])
            diff = abs(len(words) - len(ref_words))
            if diff < closest_diff:
                closest_diff, closest_len = diff, len(ref_words)
            elif diff == closest_diff and len(ref_words) < closest_len:
                closest_len = len(ref_words)
            for ngram, count in _ngrams(ref_words, 4).items():
                if count > ref_max.get(ngram, 0):
                    ref_max[ngram] = count
        len_hyp += len(words)
        len_ref += closest_len
        for ngram, count in _ngrams(words, 4).items():
            n = len(ngram)
            total[n] += count
            if ngram in ref_max:
                correct[n] += min(count, ref_max[ngram])
    if len_ref == 0 or len_hyp == 0:
        return 0.0  # the Perl script prints "BLEU = 0" and exits 1 (or dies dividing by 0) here
    precisions = [correct[n] / total[n] if total[n] else 0.0 for n in range(1, 5)]
    bp = math.exp(1 - len_ref / len_hyp) if len_hyp < len_ref else 1.0
    # my_log: log(0) is replaced by -9999999999, which makes BLEU 0 in double precision.
    logs = [math.log(p) if p else -9999999999 for p in precisions]
    return 100 * bp * math.exp(sum(logs) / 4)
