"""The demo's outputs, from its run records: `demo.md` (each row's trainable parameters, the five
E2E scores, train and decode time, the paper's row for orientation) and `demo.png` (LoRA's
training loss by step, and the scores side by side)."""
from __future__ import annotations

from pathlib import Path

from .paper_numbers import load_table
from .run_record import read as read_record

# (record key, label, x100 to the paper's scale): as Table 3 prints them
SCORES = [("BLEU", "BLEU", True), ("NIST", "NIST", False), ("METEOR", "METEOR", True),
          ("ROUGE_L", "ROUGE-L", True), ("CIDEr", "CIDEr", False)]


def _scaled(record: dict, key: str, x100: bool) -> float:
    value = record["metrics"][key]
    return value * 100 if x100 else value


def _fmt(value: float, x100: bool) -> str:
    return f"{value:.1f}" if x100 else f"{value:.2f}"


def table_rows(rows: list[tuple[str, dict]], paper_row: str) -> list[list[str]]:
    """One line per record, then the paper's row (cells as printed)."""
    lines = []
    for label, record in rows:
        train = record.get("train") or {}
        steps = train.get("steps", 0)
        trained = f"{train['wall_s']:.0f} s ({steps} steps)" if steps else "—"
        decode = record.get("decode", {})
        lines.append([label, f"{record['params']['trainable']:,}",
                      *(_fmt(_scaled(record, k, x100), x100) for k, _, x100 in SCORES),
                      trained, f"{decode.get('wall_s', 0):.0f} s ({decode.get('sources', 0)} MRs)"])
    paper = load_table(3).row(paper_row)
    if paper is not None:
        cells = [paper.cells[label if label != "METEOR" else "MET"].printed for _, label, _ in SCORES]
        printed = paper.params.printed if paper.params else "?"
        lines.append([f"{paper_row} (paper, Table 3)", printed, *cells, "5 epochs, 42k lines",
                      "630 MRs, beam 10"])
    return lines


def render_markdown(rows: list[tuple[str, dict]], paper_row: str) -> str:
    header = ["", "trainable", *(label for _, label, _ in SCORES), "training", "decoding"]
    body = table_rows(rows, paper_row)
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in body]
    record = rows[-1][1]
    cfg, data = record["config"], record.get("data", {})
    out += ["", f"Budget: {data.get('train_examples', '?')} training lines, "
            f"{cfg['data']['max_eval_sources']} test MRs (the slice in data/demo), decoding with "
            f"{cfg['decode']['num_beams']} beam(s). Scores from the official-parity E2E scorer "
            "(BLEU, METEOR, ROUGE-L x100). The paper's row is GPT-2 M (355M) trained on the whole "
            "E2E set and decoded with beam 10 on all 630 test MRs: shown for orientation, not as "
            "a like-for-like comparison. Model: " + record.get("model_display", record["model"])
            + "."]
    return "\n".join(out) + "\n"


def plot(path: Path, rows: list[tuple[str, dict]]) -> Path:
    """Left: training loss by step of the trained row(s). Right: BLEU, METEOR, ROUGE-L per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    for label, record in rows:
        curve = (record.get("train") or {}).get("curve") or []
        train = [p for p in curve if "loss" in p]
        dev = [p for p in curve if "dev_loss" in p]
        if train:
            loss_ax.plot([p["step"] for p in train], [p["loss"] for p in train],
                         label=f"{label}: training")
        if dev:
            loss_ax.plot([p["step"] for p in dev], [p["dev_loss"] for p in dev], "o",
                         label=f"{label}: dev")
    loss_ax.set(title="Training loss", xlabel="optimizer step", ylabel="loss (label-smoothed)")
    loss_ax.grid(True, alpha=0.3)
    if loss_ax.get_legend_handles_labels()[0]:
        loss_ax.legend(fontsize=8)
    shown = [(k, label) for k, label, x100 in SCORES if x100]
    width = 0.8 / len(rows)
    for i, (label, record) in enumerate(rows):
        xs = [j + i * width for j in range(len(shown))]
        values = [_scaled(record, k, True) for k, _ in shown]
        bars = score_ax.bar(xs, values, width, label=label)
        score_ax.bar_label(bars, fmt="%.1f", fontsize=8)
    score_ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(shown))],
                        [label for _, label in shown])
    score_ax.set(title="E2E test scores (x100)", ylim=(0, 100))
    score_ax.legend(fontsize=8)
    fig.suptitle(f"make demo: {rows[-1][1].get('model_display', '')} on an E2E slice")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(out: Path, rows: list[tuple[str, Path]], paper_row: str) -> Path:
    """Read each (label, record path), write `demo.md` and `demo.png` into `out`."""
    records = [(label, read_record(Path(p)).to_dict()) for label, p in rows]
    table = Path(out) / "demo.md"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(render_markdown(records, paper_row), encoding="utf-8")
    plot(table.with_suffix(".png"), records)
    return table
