"""Write the example data files of the README's quick starts into ``examples/``.

    python scripts/make_examples.py

- ``machines.csv``: three machines (``machine``: m1, m2, m3) each switching between an idle and
  a loaded regime (``temp`` in °C, ``vib`` in mm/s), a regime lasting ~100 readings; the rows
  interleaved as the machines report, one reading of each per time step.
- ``levels.csv``: two tanks (``tank``: t1, t2) whose ``level`` (from its mark) drifts from 0 as
  a random walk (step sd 0.5, so Q = 0.25) read with noise (sd 0.5, so R = 0.25), interleaved
  likewise.
- ``notes.txt``: maintenance notes, one per line, from three topics (hydraulics, drive,
  electronics) over the 24 words of ``NOTE_WORDS``.

Every file comes from a seeded generator: running the script again writes the same bytes
(``tests/test_examples.py`` checks it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

N_STEPS = 2_000
REGIME_MEANS = np.array([[21.0, 0.5], [45.0, 4.0]])  # idle, loaded: (temp, vib)
REGIME_SD = np.array([1.5, 0.3])
STAY = 0.99  # a regime lasts 1 / (1 - STAY) = 100 readings on average
LEVEL_STEP_SD, LEVEL_NOISE_SD = 0.5, 0.5
TOPIC_WORDS = (
    ("pump", "valve", "leak", "seal", "pressure", "pipe", "hose", "fluid"),
    ("motor", "belt", "bearing", "vibration", "noise", "shaft", "gearbox", "alignment"),
    ("sensor", "calibration", "reading", "drift", "display", "cable", "voltage", "fuse"),
)
NOTE_WORDS = tuple(word for words in TOPIC_WORDS for word in words)
N_NOTES = 3_000


def machines_csv(seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    names = ("m1", "m2", "m3")
    states = np.empty((len(names), N_STEPS), dtype=int)
    states[:, 0] = rng.integers(2, size=len(names))
    for t in range(1, N_STEPS):
        switch = rng.random(len(names)) > STAY
        states[:, t] = np.where(switch, 1 - states[:, t - 1], states[:, t - 1])
    readings = REGIME_MEANS[states] + rng.normal(size=(*states.shape, 2)) * REGIME_SD
    lines = ["machine,temp,vib"]
    for t in range(N_STEPS):
        for m, name in enumerate(names):
            temp, vib = readings[m, t]
            lines.append(f"{name},{temp:.2f},{vib:.3f}")
    return "\n".join(lines) + "\n"


def levels_csv(seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    names = ("t1", "t2")
    levels = np.cumsum(rng.normal(0.0, LEVEL_STEP_SD, (len(names), N_STEPS)), axis=1)
    readings = levels + rng.normal(0.0, LEVEL_NOISE_SD, levels.shape)
    lines = ["tank,level"]
    for t in range(N_STEPS):
        lines.extend(f"{name},{readings[i, t]:.3f}" for i, name in enumerate(names))
    return "\n".join(lines) + "\n"


def notes_txt(seed: int = 2) -> str:
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, len(TOPIC_WORDS[0]) + 1)
    zipf /= zipf.sum()
    notes = []
    for _ in range(N_NOTES):
        shares = rng.dirichlet(np.full(len(TOPIC_WORDS), 0.2))
        topics = rng.choice(len(TOPIC_WORDS), size=int(rng.integers(8, 15)), p=shares)
        notes.append(" ".join(TOPIC_WORDS[k][rng.choice(len(zipf), p=zipf)] for k in topics))
    return "\n".join(notes) + "\n"


EXAMPLES = {"machines.csv": machines_csv, "levels.csv": levels_csv, "notes.txt": notes_txt}
"""File name -> the function that makes its text."""


def main(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for name, make in EXAMPLES.items():
        (folder / name).write_text(make(), encoding="utf-8")
        print(f"wrote {folder / name}")


if __name__ == "__main__":
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "examples"
    )
