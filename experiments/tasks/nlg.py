"""E2E, WebNLG 2017 and DART as the official LoRA code formats them (paper_spec §2.2).

Each line becomes context `key : value | ...` (E2E) or `subject : property : object | ...`
(WebNLG, DART) with one reference; lines of one source share a `group`. Files are read in the
LoRA layout when present, otherwise converted from the datasets' own releases.
"""
from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

# the official decode script's 10 seen categories (the paper's text says 9, paper_spec App. C)
from ..metrics.webnlg import SEEN_CATEGORIES
from .base import (DataFormatError, DataMissingError, Example, find_data_file, read_data_json,
                   read_data_text, register_task)

# ---------------------------------------------------------------------------------- E2E

# CSV slot names -> the names in the LoRA text files (create_datasets.sh)
E2E_KEYS = {"name": "name", "eatType": "Type", "food": "food", "priceRange": "price",
            "customer rating": "customer rating", "area": "area",
            "familyFriendly": "family friendly", "near": "near"}
E2E_CSV = {"train": "trainset.csv", "valid": "devset.csv", "test": "testset_w_refs.csv"}
_MR_SLOT = re.compile(r"\s*([^\[,]+)\[([^\]]*)\]")


@lru_cache(maxsize=1)
def _spacy_tokenizer():
    import spacy

    return spacy.blank("en").tokenizer


def spacy_tokenize(text: str) -> str:
    """The official data's tokenisation: spaCy's English rules, tokens joined by one space.

    Reproduces 4,677 of the 4,693 E2E test lines of LoRA's test.txt exactly from the CSV; the
    16 others differ in digit-letter hyphens ('1-star'), which newer spaCy splits.
    """
    return " ".join(t.text for t in _spacy_tokenizer()(text) if not t.is_space)


def e2e_context(mr: str) -> str:
    """`name[Blue Spice], eatType[pub]` -> `name : Blue Spice | Type : pub`."""
    slots = _MR_SLOT.findall(mr)
    if not slots:
        raise ValueError(f"not an E2E meaning representation: {mr!r}")
    try:
        return " | ".join(f"{E2E_KEYS[k.strip()]} : {spacy_tokenize(v)}" for k, v in slots)
    except KeyError as err:
        raise ValueError(f"unknown E2E slot {err} in {mr!r}; known: {sorted(E2E_KEYS)}") from None


def _read_lora_lines(path: Path) -> list[Example]:
    out = []
    for n, line in enumerate(read_data_text(path).split("\n"), 1):
        if not line.strip():
            continue
        if "||" not in line:
            raise DataFormatError(f"{path}:{n}: expected 'context||completion', got {line[:80]!r}")
        context, completion = line.split("||", 1)
        out.append(Example(context, completion))
    return out


def _read_e2e_csv(path: Path, limit: int | None = None) -> list[Example]:
    reader = csv.DictReader(io.StringIO(read_data_text(path), newline=""))
    if not {"mr", "ref"} <= set(reader.fieldnames or []):
        raise DataFormatError(f"{path}:1: expected columns 'mr' and 'ref', got {reader.fieldnames}")
    out = []
    for row in reader:
        if limit and len(out) >= limit:
            break
        if row["mr"] is None or row["ref"] is None:  # DictReader fills a short row with None
            raise DataFormatError(f"{path}:{reader.line_num}: a row without its 'ref' field "
                                  "(cut off?)")
        try:
            context = e2e_context(row["mr"])
        except ValueError as err:
            raise DataFormatError(f"{path}:{reader.line_num}: {err}") from None
        # The official refs end with one space after the last token.
        out.append(Example(context, spacy_tokenize(row["ref"]) + " "))
    return out


@register_task("e2e")
def load_e2e(split: str, limit: int | None = None) -> list[Example]:
    if split not in E2E_CSV:
        raise ValueError(f"E2E split {split!r}: choose one of {sorted(E2E_CSV)}")
    path = find_data_file("e2e", [f"lora_format/{split}.txt", f"{split}.txt",
                                  f"csv/{E2E_CSV[split]}", E2E_CSV[split]])
    return _read_lora_lines(path) if path.suffix == ".txt" else _read_e2e_csv(path, limit)


# ------------------------------------------------------------------------------- WebNLG

WEBNLG_XML = {"train": ["xml/train"], "dev": ["xml/dev"], "test": ["xml/test/testdata_with_lex.xml"]}


def _webnlg_example(category: str, triples: list[tuple[str, str, str]], lex: str) -> Example:
    context = " | ".join(f"{s} : {p} : {o}" for s, p, o in triples)
    return Example(context, lex, meta={"category": category, "seen": category in SEEN_CATEGORIES})


def _webnlg_from_json(path: Path) -> list[Example]:
    data = read_data_json(path)
    out = []
    for n, entry in enumerate(data.get("entries", []) if isinstance(data, dict) else [], 1):
        try:
            (body,) = entry.values()
            triples = [(t["subject"], t["property"], t["object"])
                       for t in body["modifiedtripleset"]]
            out += [_webnlg_example(body["category"], triples, lex["lex"])
                    for lex in body["lexicalisations"] if lex["comment"] == "good"]
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DataFormatError(f"{path}: entry {n} is not in the WebNLG layout "
                                  f"({type(err).__name__}: {err}; needs category, "
                                  "modifiedtripleset, lexicalisations)") from None
    if not out:
        raise DataFormatError(f"{path}: no entries with a good lexicalisation "
                              "(expected {\"entries\": [...]})")
    return out


def _parse_xml(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as err:
        line, col = err.position
        raise DataFormatError(f"{path}:{line}: not well-formed XML ({err}, column {col}); the "
                              "file may be cut off or not UTF-8") from None


def _triples(path: Path, entry: ET.Element, n: int) -> list[list[str]]:
    tripleset = entry.find("modifiedtripleset")
    if tripleset is None:
        raise DataFormatError(f"{path}: entry {n} has no <modifiedtripleset>")
    out = []
    for m in tripleset.iter("mtriple"):
        parts = [x.strip() for x in (m.text or "").split(" | ")]
        if len(parts) != 3:
            raise DataFormatError(f"{path}: entry {n} has a triple {m.text!r} that is not "
                                  "'subject | property | object'")
        out.append(parts)
    return out


def _webnlg_from_xml(path: Path) -> list[Example]:
    files = sorted(path.rglob("*.xml")) if path.is_dir() else [path]
    out = []
    for f in files:
        for n, entry in enumerate(_parse_xml(f).iter("entry"), 1):
            triples = [tuple(t) for t in _triples(f, entry, n)]
            out += [_webnlg_example(entry.get("category"), triples, lex.text or "")
                    for lex in entry.iter("lex") if lex.get("comment") == "good"]
    if not out:
        raise DataFormatError(f"{path}: no <entry> with a good <lex> in {len(files)} XML file(s)")
    return out


@register_task("webnlg")
def load_webnlg(split: str, limit: int | None = None) -> list[Example]:
    if split not in WEBNLG_XML:
        raise ValueError(f"WebNLG split {split!r}: choose one of {sorted(WEBNLG_XML)}")
    path = find_data_file("webnlg", [f"lora_format/{split}.json", f"{split}.json"]
                          + WEBNLG_XML[split])
    return _webnlg_from_json(path) if path.suffix == ".json" else _webnlg_from_xml(path)


# --------------------------------------------------------------------------------- DART

def _dart_context(triples) -> str:
    # The official converter lower-cases the relation only.
    return " | ".join(f"{s} : {r.lower()} : {o}" for s, r, o in triples)


def _dart_from_json(path: Path) -> list[Example]:
    data = read_data_json(path)
    if not isinstance(data, list) or not data:
        raise DataFormatError(f"{path}: expected a non-empty JSON list of "
                              "{tripleset, annotations} items")
    out = []
    for n, item in enumerate(data, 1):
        try:
            out += [Example(_dart_context(item["tripleset"]), ann["text"])
                    for ann in item["annotations"]]
        except (KeyError, TypeError, ValueError) as err:
            raise DataFormatError(f"{path}: item {n} is not in the DART layout "
                                  f"({type(err).__name__}: {err}; needs tripleset and "
                                  "annotations[].text)") from None
    return out


def _dart_from_xml(path: Path) -> list[Example]:
    out = []
    for n, entry in enumerate(_parse_xml(path).iter("entry"), 1):
        triples = _triples(path, entry, n)
        out += [Example(_dart_context(triples), lex.text or "") for lex in entry.iter("lex")]
    if not out:
        raise DataFormatError(f"{path}: no <entry> with a <lex>")
    return out


@register_task("dart")
def load_dart(split: str, limit: int | None = None) -> list[Example]:
    if split not in ("train", "dev", "test"):
        raise ValueError(f"DART split {split!r}: choose one of ['dev', 'test', 'train']")
    name = f"dart-v1.1.1-full-{split}"
    hint = ("DART's training split is not in the offline data (see shared/data/README.md)"
            if split == "train" else "")
    path = find_data_file("dart", [f"lora_format/{name}.json", f"{name}.json", f"xml/{name}.xml",
                                   f"{name}.xml"], hint=hint)
    return _dart_from_json(path) if path.suffix == ".json" else _dart_from_xml(path)


__all__ = ["load_e2e", "load_webnlg", "load_dart", "spacy_tokenize", "e2e_context",
           "DataMissingError"]
