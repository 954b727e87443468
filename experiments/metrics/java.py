"""The two Java tools behind the official scorers, each started once: Stanford PTBTokenizer 3.4.1 and METEOR 1.5.
Owns finding Java, the one-call PTB tokenisation (punctuation dropped as MS-COCO does) and METEOR (the jar's -stdio, or jsrc/MeteorParallel)."""
from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Sequence

from ._io import MetricInputError

JAVA_HINT = (
    "Java is needed for METEOR and the PTB tokenizer (E2E METEOR/ROUGE-L/CIDEr, WebNLG/DART METEOR) "
    "but no `java` was found on PATH; install a JRE, e.g. `apt-get install openjdk-17-jre-headless`"
)

# Characters that Java's line readers or the PTB lexer take as a line break: one inside a sentence
# would shift every later line. The official wrapper only replaces '\n'; where these occur its
# output is misaligned (broken), so mapping them to a space changes nothing that was right.
_JAVA_BREAKS = re.compile("[\r\n\x0b\x0c\x85\u2028\u2029]")


def _pycocoevalcap_dir() -> Path:
    try:
        # a namespace package (no __init__), so locate it through a module that has a file
        from pycocoevalcap.tokenizer import ptbtokenizer
    except ImportError:  # pragma: no cover - a declared dependency
        raise MetricInputError("pycocoevalcap==1.2 is not installed (pip install pycocoevalcap==1.2)") from None
    return Path(ptbtokenizer.__file__).resolve().parent.parent


def java_executable() -> str:
    """Path of `java`, or MetricInputError saying how to install it (never a silent 0)."""
    java = shutil.which("java")
    if java is None:
        raise MetricInputError(JAVA_HINT)
    return java


def start_ptb_tokenizer(sentences: Sequence[str]) -> "PTBJob":
    """Start one PTBTokenizer JVM on all sentences; call .result() for the token strings."""
    return PTBJob(sentences)


class PTBJob:
    """PTBTokenizer `-preserveLines -lowerCase` over every sentence at once, punctuation tokens
    dropped exactly as pycocoevalcap's PTBTokenizer does (it spawns one JVM per call; the
    official E2E scorer calls it twice, we call it once for hypotheses and references together:
    with -preserveLines each line is tokenised on its own, so the result is the same)."""

    def __init__(self, sentences: Sequence[str]):
        from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS, STANFORD_CORENLP_3_4_1_JAR

        self._punct = set(PUNCTUATIONS)
        self._n = len(sentences)
        jar = _pycocoevalcap_dir() / "tokenizer" / STANFORD_CORENLP_3_4_1_JAR
        java = java_executable()
        self._dir = tempfile.mkdtemp(prefix="lora-repro-ptb-")
        path = os.path.join(self._dir, "sentences.txt")
        text = "\n".join(_JAVA_BREAKS.sub(" ", s) for s in sentences)
        with open(path, "wb") as fh:
            fh.write(text.encode("utf-8"))
        self._proc = subprocess.Popen(
            # C1-only JIT and serial GC: same tokens, a third of the CPU, left to METEOR's JVM
            [java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", str(jar),
             "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def result(self) -> list[str]:
        out, err = self._proc.communicate()
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._proc.returncode != 0:
            raise RuntimeError(f"PTBTokenizer failed (exit {self._proc.returncode}): {err.decode(errors='replace')[-2000:]}")
        # With -preserveLines the output has one line per input line and no final newline, so
        # splitting gives exactly one entry per sentence (empty sentences included).
        lines = out.decode("utf-8").split("\n")
        if len(lines) != self._n:
            raise RuntimeError(f"PTBTokenizer returned {len(lines)} lines for {self._n} sentences")
        return [" ".join(w for w in line.rstrip().split(" ") if w not in self._punct) for line in lines]


_DRIVER_SOURCE = Path(__file__).resolve().parent / "jsrc" / "MeteorParallel.java"


def _cache_root() -> Path:
    if os.environ.get("LORA_REPRO_CACHE"):
        return Path(os.environ["LORA_REPRO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lora-repro"


def meteor_driver_dir(jar: Path) -> Path | None:
    """Folder with our compiled MeteorParallel.class (javac'd once into the cache), or None when
    it cannot be had (no javac: a bare JRE; LORA_REPRO_METEOR_PARALLEL=0; a compile error), in
    which case METEOR runs in the jar's own -stdio mode: slower, same numbers."""
    if os.environ.get("LORA_REPRO_METEOR_PARALLEL", "1") == "0":
        return None
    try:
        source = _DRIVER_SOURCE.read_bytes()
        key = hashlib.sha1(source + str(jar.stat().st_size).encode()).hexdigest()[:16]
        target = _cache_root() / "meteor-parallel" / key
        if (target / "MeteorParallel.class").exists():
            return target
        javac = shutil.which("javac")
        if javac is None:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        build = tempfile.mkdtemp(dir=target.parent, prefix="build-")
        done = subprocess.run([javac, "-nowarn", "-cp", str(jar), "-d", build, str(_DRIVER_SOURCE)],
                              capture_output=True, timeout=300)
        if done.returncode != 0:
            shutil.rmtree(build, ignore_errors=True)
            return None
        try:
            os.replace(build, target)
        except OSError:  # another process got there first
            shutil.rmtree(build, ignore_errors=True)
        return target if (target / "MeteorParallel.class").exists() else None
    except (OSError, subprocess.SubprocessError):
        return None


class Meteor:
    """METEOR 1.5 (`-l en -norm`; the number of references is per segment) in one JVM.

    Same protocol as pycocoevalcap's Meteor wrapper (SCORE lines give per-segment statistics, one
    EVAL over all of them gives the corpus score from summed statistics), with two speed-ups that
    leave every number as the jar computes it: lines are written by a thread while answers are
    read (no round trip per segment), and, where javac is available, our MeteorParallel driver
    (jsrc/) scores segments on several threads sharing one paraphrase table, which holds only the
    entries the batch's words can use (the same numbers; a cold call reads the table once).
    ``parallel=False`` forces the jar's plain -stdio mode.
    """

    def __init__(self, parallel: bool = True):
        from pycocoevalcap.meteor.meteor import METEOR_JAR

        java = java_executable()
        meteor_dir = _pycocoevalcap_dir() / "meteor"
        driver = meteor_driver_dir(meteor_dir / METEOR_JAR) if parallel else None
        self.parallel = driver is not None
        if self.parallel:
            threads = str(max(1, min(4, os.cpu_count() or 1)))
            cmd = [java, "-Xmx2G", "-cp", f"{meteor_dir / METEOR_JAR}{os.pathsep}{driver}",
                   "MeteorParallel", threads, "-l", "en", "-norm"]
        else:
            # the same JVM options as pycocoevalcap's wrapper
            cmd = [java, "-jar", "-Xmx2G", METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm"]
        self._proc = subprocess.Popen(cmd, cwd=str(meteor_dir), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._ready = not self.parallel
        self._pending = b""
        self._lock = threading.Lock()

    def alive(self) -> bool:
        return self._proc.poll() is None

    @staticmethod
    def _score_line(hyp: str, refs: Sequence[str]) -> str:
        # Same sanitising as pycocoevalcap's _stat: '|||' is the field separator.
        hyp = hyp.replace("|||", "").replace("  ", " ")
        return " ||| ".join(("SCORE", " ||| ".join(refs), hyp))

    def _write(self, lines: list[str], errors: list) -> None:
        # one write of everything: a thread writing line by line would wait for the GIL at every
        # line while the caller computes ROUGE/CIDEr
        try:
            self._proc.stdin.write(("\n".join(lines) + "\n").encode("utf-8"))
            self._proc.stdin.flush()
        except Exception as exc:  # surfaced by the reader
            errors.append(exc)

    def _readlines(self, count: int) -> list[str]:
        """``count`` lines, read in large chunks (same reason as _write: few GIL round trips)."""
        while self._pending.count(b"\n") < count:
            chunk = self._proc.stdout.read1(1 << 20)
            if not chunk:
                raise RuntimeError("METEOR (java) stopped unexpectedly")
            self._pending += chunk
        parts = self._pending.split(b"\n", count)
        self._pending = parts[count] if len(parts) > count else b""
        return [line.decode("utf-8").strip() for line in parts[:count]]

    def _readline(self) -> str:
        return self._readlines(1)[0]

    def score(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
        """Corpus METEOR and the per-segment scores."""
        with self._lock:
            return self._score(hyps, refs)

    def _score(self, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
        lines = [self._score_line(h, r) for h, r in zip(hyps, refs)]
        if self.parallel:
            lines.insert(0, str(len(lines)))
        errors: list = []
        writer = threading.Thread(target=self._write, args=(lines, errors), daemon=True)
        writer.start()
        if self.parallel:
            while not self._ready:  # the JVM may print warnings before it is loaded
                self._ready = self._readline() == "READY"
            out = self._readlines(2 * len(hyps) + 1)  # statistics, score, ... , corpus score
            seg_scores = [float(x) for x in out[1:-1:2]]
            score = float(out[-1])
            writer.join()
        else:
            stats = self._readlines(len(lines))
            writer.join()
            eval_line = "EVAL ||| " + " ||| ".join(stats)
            self._proc.stdin.write(eval_line.encode("utf-8") + b"\n")
            self._proc.stdin.flush()
            out = self._readlines(len(lines) + 1)
            seg_scores = [float(x) for x in out[:-1]]
            score = float(out[-1])
        if errors:
            raise RuntimeError(f"writing to METEOR failed: {errors[0]}")
        return score, seg_scores

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            self._proc.kill()
        self._proc.wait()

    def __enter__(self) -> "Meteor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: Meteor | None = None
_shared_lock = threading.Lock()


def shared_meteor() -> Meteor:
    """A METEOR JVM kept for the life of the process: it keeps the paraphrase entries loaded so
    far and re-reads the table only for a batch with new words; without javac, loading the jar's
    whole paraphrase table takes ~6 s and ~1 GB. Repeated scoring (every epoch, every case) pays
    the JVM's start once. Ended at exit or by close_java()."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive():
            _shared = Meteor()
        return _shared


def close_java() -> None:
    """End the kept METEOR JVM, if any."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None


atexit.register(close_java)
