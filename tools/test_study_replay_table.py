#!/usr/bin/env python3
"""Unit tests of tools/study_replay_table.py on a hand-made study directory (plain python3)."""
import io
import json
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study_replay_table  # noqa: E402


def replay(correct, resisted, events, forgotten, entries=100):
    gens = [{"generation": g, "accuracy": correct[g] / entries, "resistedThen": resisted[g],
             "resistedFraction": resisted[g] / entries, "forgettingEvents": events[g]} for g in range(len(correct))]
    return {"totalEntries": entries * len(correct), "totalCorrect": sum(correct), "generations": gens,
            "totalForgettingEvents": sum(events), "samplesForgotten": forgotten}


class ReplayTableTests(unittest.TestCase):
    def test_meansAndSds_overSeeds_andPerGeneration(self):
        with tempfile.TemporaryDirectory() as root:
            cells = {"a_seed=1": replay([90, 80], [50, 70], [2, 4], 5), "a_seed=2": replay([70, 80], [30, 50], [4, 6], 7),
                     "b_seed=1": replay([100, 100], [100, 100], [0, 0], 0), "a-other_seed=1": replay([0, 0], [0, 0], [9, 9], 9)}
            for name, r in cells.items():
                os.makedirs(os.path.join(root, "runs", name, "eval"))
                with open(os.path.join(root, "runs", name, "eval", "replay.json"), "w") as f:
                    json.dump(r, f)
            sys.argv = ["study_replay_table.py", root, "a", "b"]
            out = io.StringIO()
            with redirect_stdout(out):
                study_replay_table.main()
            text = out.getvalue()
            # a: accuracy 85 % and 75 % → 80.00 ± 7.07; resisted 60 % and 40 % → 50.00 ± 14.14;
            # events 6 and 10 → 8.00 ± 2.83; rate 6/120 = 5 % and 10/80 = 12.5 % → 8.75 ± 5.30; forgotten 5, 7 → 6.00 ± 1.41.
            self.assertIn("| a | 2 | 80.00 ± 7.07 | 50.00 ± 14.14 | 8.00 ± 2.83 | 8.75 ± 5.30 | 6.00 ± 1.41 |", text)
            self.assertIn("| b | 1 | 100.00 | 100.00 | 0.00 | 0.00 | 0.00 |", text)  # "a-other" is not arm "a"
            self.assertIn("| 0 | 80.0 / 40.0 / 3.0 | 100.0 / 100.0 / 0.0 |", text)


if __name__ == "__main__":
    unittest.main()
