"""Input checking shared by every metric: the one error class, strict file reading, shared data.
Owns MetricInputError and the readers for the official plain-text layouts."""
from __future__ import annotations

import os
from pathlib import Path


class MetricInputError(ValueError):
    """Bad input to a scorer (counts that differ, empty or undecodable files, missing Java).

    The CLI turns it into an argparse-style message and exit status 2, never a traceback.
    """


def read_text(path: str | os.PathLike) -> str:
    """Whole file as UTF-8 text; names the file and the byte offset of the first bad byte."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MetricInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MetricInputError(f"{path}: is a directory, expected a file") from None
    except OSError as exc:
        raise MetricInputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetricInputError(
            f"{path}: not valid UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start}"
        ) from None


def read_lines(path: str | os.PathLike, *, allow_empty: bool = False) -> list[str]:
    """One item per line, each stripped, as e2e-metrics' read_lines does.

    str.splitlines splits where Python's codecs line reader (which the official scorer uses) splits,
    so the line count is the official one; a final newline adds no line.
    """
    text = read_text(path)
    lines = [line.strip() for line in text.splitlines()]
    if not allow_empty and not any(lines):
        raise MetricInputError(f"{path}: file is empty")
    return lines


def read_grouped_refs(path: str | os.PathLike) -> list[list[str]]:
    """References grouped by blank lines (the E2E layout); a file with no blank line is one
    reference per item, exactly as e2e-metrics reads it."""
    lines = read_lines(path)
    groups: list[list[str]] = [[]]
    starts = [1]
    for no, line in enumerate(lines, start=1):
        if line:
            groups[-1].append(line)
        else:
            groups.append([])
            starts.append(no + 1)
    if not groups[-1]:
        groups.pop()
        starts.pop()
    if len(groups) == 1:
        return [[ref] for ref in groups[0]]
    # The official reader would build an empty group here and crash later; say where instead.
    for group, start in zip(groups, starts):
        if not group:
            raise MetricInputError(
                f"{path}: two blank lines in a row at line {start - 1}: an empty reference group "
                "(groups must be separated by exactly one blank line)"
            )
    return groups


def check_counts(n_hyp: int, n_ref: int, hyp_name: str = "outputs", ref_name: str = "reference groups") -> None:
    """Say both counts and both sources when outputs and references do not pair up."""
    if n_hyp == 0:
        raise MetricInputError(f"{hyp_name}: no outputs to score")
    if n_hyp != n_ref:
        raise MetricInputError(
            f"{n_hyp} outputs in {hyp_name} but {n_ref} reference groups in {ref_name}; they must pair up one to one"
        )


