"""The paper's Section 7 analyses (Figures 3, 4, 6, 7, 8 and Table 7) rebuilt from LoRA run
records; `python -m experiments.analysis figure3` (see __main__). Never trains.
"""
