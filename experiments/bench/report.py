"""How a benchmark writes its result: `<out>.json` and the markdown view beside it, `<out>.md`."""
from __future__ import annotations

import json
from pathlib import Path


def write_report(out: Path, result: dict, markdown: str, indent: int = 2) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=indent) + "\n", encoding="utf-8")
    md = out.with_suffix(".md")
    md.write_text(markdown, encoding="utf-8")
    return [out, md]
