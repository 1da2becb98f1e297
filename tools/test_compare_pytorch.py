#!/usr/bin/env python3
"""test_compare_pytorch.py: unit tests of tools/compare_pytorch.py's pure parts (flags, the model
spec parser, memloss's width rounding, the parity check against a canned `memloss models
--state-dict` answer, settings from `--print-config`, the table and JSON, lscpu parsing) and of its
memloss-binary error paths (with fake binaries); when torch is importable, the PyTorch twins and
the step (no timing); and, when a built memloss is there (MEMLOSS_BIN or
.build/release/memloss), that its answers still have that form. Runs with plain python3, no torch:
  python3 tools/test_compare_pytorch.py
It does not time anything; the timed run is compare_pytorch.py itself.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import stat
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_pytorch as cp  # noqa: E402

# `memloss models --state-dict smallcnn --width 0.25 --json` (the real binary's answer, trimmed to
# the fields the script reads).
SMALLCNN_QUARTER = {
    "model": "smallcnn×0.25", "architecture": "smallcnn", "classes": 10, "width": 0.25,
    "input_shape": [1, 28, 28], "parameters": 20062,
    "state_dict": [
        {"name": "feature_extractor.conv1.weight", "shape": [8, 1, 3, 3], "kind": "parameter"},
        {"name": "feature_extractor.conv1.bias", "shape": [8], "kind": "parameter"},
        {"name": "feature_extractor.conv2.weight", "shape": [8, 8, 3, 3], "kind": "parameter"},
        {"name": "feature_extractor.conv2.bias", "shape": [8], "kind": "parameter"},
        {"name": "feature_extractor.conv3.weight", "shape": [16, 8, 3, 3], "kind": "parameter"},
        {"name": "feature_extractor.conv3.bias", "shape": [16], "kind": "parameter"},
        {"name": "feature_extractor.conv4.weight", "shape": [16, 16, 3, 3], "kind": "parameter"},
        {"name": "feature_extractor.conv4.bias", "shape": [16], "kind": "parameter"},
        {"name": "classifier.fc1.weight", "shape": [50, 256], "kind": "parameter"},
        {"name": "classifier.fc1.bias", "shape": [50], "kind": "parameter"},
        {"name": "classifier.fc2.weight", "shape": [50, 50], "kind": "parameter"},
        {"name": "classifier.fc2.bias", "shape": [50], "kind": "parameter"},
        {"name": "classifier.fc3.weight", "shape": [10, 50], "kind": "parameter"},
        {"name": "classifier.fc3.bias", "shape": [10], "kind": "parameter"},
    ],
}

# The part of `memloss train --method trades --model resnet18 --epsilon 8/255 --print-config` the
# script reads.
PRINT_CONFIG = {
    "method": {"method": "trades", "beta": 6,
               "attack": {"epsilon": 0.03137255, "stepSize": 0.007084, "steps": 10, "norm": "linf",
                          "randomStart": {"gaussian": {"std": 0.001}}}},
    "optimizer": {"learningRate": 0.05, "momentum": 0.9, "dampening": 0, "weightDecay": 0, "nesterov": False},
}

LSCPU = """Architecture:                            x86_64
CPU(s):                                  2
Model name:                              AMD EPYC
CPU family:                              25
Thread(s) per core:                      1
Core(s) per socket:                      2
Socket(s):                               1
Flags:                                   fpu vme de: odd
"""


def canned_entries() -> tuple[int, list[cp.StateEntry]]:
    return cp.entries_from_memloss_json(json.loads(json.dumps(SMALLCNN_QUARTER)))


def parse_quietly(argv: list[str]) -> argparse.Namespace:
    """parse_args with argparse's usage message swallowed."""
    with contextlib.redirect_stderr(io.StringIO()):
        return cp.parse_args(argv)


class FlagTests(unittest.TestCase):
    def test_defaults_areTheBriefsSettings(self) -> None:
        a = cp.parse_args([])
        self.assertEqual([m.label for m in a.models], ["smallcnn", "resnet18×0.25", "resnet18"])
        self.assertEqual((a.batch, a.attack_steps, a.threads, a.steps, a.warmup), (128, 10, 2, 3, 1))
        self.assertEqual(a.memloss_bin, ".build/release/memloss")
        self.assertFalse(a.json)
        self.assertFalse(a.torch_only)

    def test_flags_parse(self) -> None:
        a = cp.parse_args(["--models", "smallcnn:0.25", "--batch", "8", "--attack-steps", "2", "--steps", "1",
                           "--warmup", "0", "--torch-only", "--json", "--memloss-bin", "/x/memloss"])
        self.assertEqual(a.models, [cp.ModelRequest("smallcnn", 0.25)])
        self.assertEqual((a.batch, a.attack_steps, a.steps, a.warmup), (8, 2, 1, 0))
        self.assertTrue(a.torch_only and a.json)
        self.assertEqual(a.memloss_bin, "/x/memloss")

    def test_badValues_exitWithStatus2_namingTheFlag(self) -> None:
        for argv, flag in [(["--batch", "0"], "--batch"), (["--steps", "two"], "--steps"),
                           (["--warmup", "-1"], "--warmup"), (["--models", "vgg16:1"], "--models"),
                           (["--threads", "0"], "--threads")]:
            err = io.StringIO()
            with self.assertRaises(SystemExit) as raised, contextlib.redirect_stderr(err):
                cp.parse_args(argv)
            self.assertEqual(raised.exception.code, 2, argv)
            self.assertIn(flag, err.getvalue(), argv)


class ModelSpecTests(unittest.TestCase):
    def test_specs_parseNamesAndWidths_aMissingWidthIsOne(self) -> None:
        self.assertEqual(cp.parse_model_specs("smallcnn:1, ResNet18:0.25,resnet18"),
                         [cp.ModelRequest("smallcnn", 1.0), cp.ModelRequest("resnet18", 0.25),
                          cp.ModelRequest("resnet18", 1.0)])

    def test_badSpecs_areRejectedWithTheEntry(self) -> None:
        for text, fragment in [("vgg16:1", "vgg16"), ("resnet18:wide", "wide"), ("resnet18:0", "(0, 16]"),
                               ("resnet18:17", "(0, 16]"), ("smallcnn:1,", "empty"), ("resnet18:nan", "(0, 16]")]:
            with self.assertRaises(ValueError) as raised:
                cp.parse_model_specs(text)
            self.assertIn(fragment, str(raised.exception), text)

    def test_labelsAndShapes_areMemlosss(self) -> None:
        self.assertEqual(cp.ModelRequest("resnet18", 0.25).label, "resnet18×0.25")
        self.assertEqual(cp.ModelRequest("smallcnn", 1.0).label, "smallcnn")
        self.assertEqual(cp.ModelRequest("smallcnn", 1.0).input_shape, (1, 28, 28))
        self.assertEqual(cp.ModelRequest("resnet18", 0.5).input_shape, (3, 32, 32))
        self.assertEqual(cp.format_width(1.0), "1")
        self.assertEqual(cp.format_width(0.125), "0.125")
        self.assertEqual(float(cp.format_width(1 / 3)), 1 / 3)

    def test_scaledWidth_roundsHalfAwayFromZero_likeSwift(self) -> None:
        # Python's round() would give 2 for 2.5 and 0 for 0.5; Swift's .rounded() gives 3 and 1.
        self.assertEqual(cp.scaled_width(64, 2.5 / 64), 3)
        self.assertEqual(cp.scaled_width(200, 0.0025), 1)
        self.assertEqual(cp.scaled_width(64, 0.001), 1)
        self.assertEqual(cp.scaled_width(200, 0.25), 50)
        self.assertEqual(cp.scaled_width(512, 0.25), 128)
        self.assertEqual(cp.scaled_width(10, 0.24999999999999997), 2)  # 2.4999999999999996: floor(x + 0.5) gives 3


class ParityTests(unittest.TestCase):
    def test_equalModels_haveNoProblems(self) -> None:
        count, entries = canned_entries()
        self.assertEqual(count, 20062)
        self.assertEqual(cp.parity_problems(count, list(entries), count, entries), [])
        cp.check_parity("smallcnn×0.25", count, list(entries), count, entries)

    def test_everyDifference_isNamed(self) -> None:
        count, entries = canned_entries()
        torch_entries = [e for e in entries if e.name != "classifier.fc3.bias"]
        torch_entries[0] = cp.StateEntry(entries[0].name, (16, 1, 3, 3), "parameter")
        torch_entries.append(cp.StateEntry("classifier.fc4.weight", (10, 10), "parameter"))
        problems = cp.parity_problems(count + 1, torch_entries, count, entries)
        text = "\n".join(problems)
        self.assertIn("parameter count: torch 20,063, memloss 20,062", text)
        self.assertIn("classifier.fc3.bias: in memloss, missing in torch", text)
        self.assertIn("classifier.fc4.weight: in torch, missing in memloss", text)
        self.assertIn("feature_extractor.conv1.weight: torch parameter [16, 1, 3, 3], memloss parameter [8, 1, 3, 3]",
                      text)
        with self.assertRaises(cp.CompareError) as raised:
            cp.check_parity("smallcnn×0.25", count + 1, torch_entries, count, entries)
        self.assertIn("smallcnn×0.25: the PyTorch model differs from memloss's", str(raised.exception))

    def test_kindAndOrder_count(self) -> None:
        count, entries = canned_entries()
        as_buffer = [cp.StateEntry(e.name, e.shape, "buffer") if i == 1 else e for i, e in enumerate(entries)]
        self.assertEqual(cp.parity_problems(count, as_buffer, count, entries),
                         ["feature_extractor.conv1.bias: torch buffer [8], memloss parameter [8]"])
        swapped = [entries[1], entries[0], *entries[2:]]
        self.assertEqual(cp.parity_problems(count, swapped, count, entries), ["same entries in a different order"])

    def test_malformedMemlossJSON_isACompareError(self) -> None:
        with self.assertRaises(cp.CompareError):
            cp.entries_from_memloss_json({"parameters": 3})


class SettingsTests(unittest.TestCase):
    def test_printConfig_givesTheTradesSettings(self) -> None:
        s = cp.settings_from_config(PRINT_CONFIG, attack_steps=7)
        self.assertAlmostEqual(s.epsilon, 8 / 255, places=7)
        self.assertAlmostEqual(s.step_size, 0.007084)
        self.assertEqual((s.attack_steps, s.beta, s.start_std), (7, 6.0, 0.001))
        self.assertEqual((s.learning_rate, s.momentum, s.dampening, s.weight_decay, s.nesterov),
                         (0.05, 0.9, 0.0, 0.0, False))

    def test_settingsJSON_usesTheReportsKeys(self) -> None:
        s = cp.settings_from_config(PRINT_CONFIG, attack_steps=10)
        self.assertEqual(cp.settings_json(s), {
            "epsilon": 0.03137255, "stepSize": 0.007084, "attackSteps": 10, "beta": 6.0, "startStd": 0.001,
            "learningRate": 0.05, "momentum": 0.9, "dampening": 0.0, "weightDecay": 0.0, "nesterov": False})

    def test_otherMethodsOrStarts_areRefused(self) -> None:
        other = json.loads(json.dumps(PRINT_CONFIG))
        other["method"]["method"] = "mart"
        with self.assertRaises(cp.CompareError) as raised:
            cp.settings_from_config(other, 10)
        self.assertIn("'mart'", str(raised.exception))
        uniform = json.loads(json.dumps(PRINT_CONFIG))
        uniform["method"]["attack"]["randomStart"] = "uniform"
        with self.assertRaises(cp.CompareError):
            cp.settings_from_config(uniform, 10)
        missing = json.loads(json.dumps(PRINT_CONFIG))
        del missing["optimizer"]["weightDecay"]
        with self.assertRaises(cp.CompareError) as raised:
            cp.settings_from_config(missing, 10)
        self.assertIn("weightDecay", str(raised.exception))


class TableTests(unittest.TestCase):
    rows = [cp.ResultRow("smallcnn", 312202, 0.5, 0.8, 0.4), cp.ResultRow("resnet18", 11173962, None, 9.0, 12.0)]
    machine = {"cpu": "AMD EPYC", "cores": 2, "cpuFamily": "25"}

    def test_ratio_isMemlossOverTheFasterTorchLayout(self) -> None:
        self.assertAlmostEqual(self.rows[0].ratio, 1.25)
        self.assertEqual(self.rows[0].faster_torch, 0.4)
        self.assertIsNone(self.rows[1].ratio)
        self.assertEqual(cp.format_ratio(1.25), "1.25")
        self.assertEqual(cp.format_ratio(None), "-")
        self.assertEqual(cp.format_seconds(12.3456), "12.3")
        self.assertEqual(cp.format_seconds(0.0001234), "1.23e-04")

    def test_table_hasTheMachineTheDateAndOneAlignedLinePerModel(self) -> None:
        text = cp.format_table(self.rows, self.machine, "2026-12-01 23:00 UTC", {"batch": 128})
        lines = text.splitlines()
        self.assertEqual(lines[0], "2026-12-01 23:00 UTC  AMD EPYC, 2 cores, cpu family 25")
        self.assertEqual(lines[1], "batch 128")
        header = lines[3]
        for column in ("model", "memloss s/step", "torch NCHW", "torch channels_last", "ratio"):
            self.assertIn(column, header)
        self.assertEqual(lines[4].split(), ["smallcnn", "0.5", "0.8", "0.4", "1.25"])
        self.assertEqual(lines[5].split(), ["resnet18", "-", "9", "12", "-"])
        self.assertEqual(len(lines[4]), len(header))

    def test_json_holdsTheSameNumbers(self) -> None:
        report = cp.report_json(self.rows, self.machine, "d", {"threads": 2}, {"smallcnn": {"beta": 6}})
        self.assertEqual(report["machine"], self.machine)
        self.assertEqual(report["threads"], 2)
        first = report["rows"][0]
        self.assertEqual((first["memlossSecondsPerStep"], first["torchNCHWSecondsPerStep"],
                          first["torchChannelsLastSecondsPerStep"]), (0.5, 0.8, 0.4))
        self.assertAlmostEqual(first["ratio"], 1.25)
        self.assertEqual(first["settings"], {"beta": 6})
        self.assertIsNone(report["rows"][1]["ratio"])
        json.dumps(report)

    def test_lscpu_givesModelCoresAndFamily(self) -> None:
        self.assertEqual(cp.parse_lscpu(LSCPU), {"cpu": "AMD EPYC", "cores": 2, "cpuFamily": "25"})
        self.assertEqual(cp.parse_lscpu("CPU(s): 4\n"), {"cpu": "unknown", "cores": 4, "cpuFamily": "unknown"})


class MemlossBinaryTests(unittest.TestCase):
    def setUp(self) -> None:
        self.directory = tempfile.TemporaryDirectory()
        self.addCleanup(self.directory.cleanup)

    def fake_binary(self, script: str) -> str:
        path = os.path.join(self.directory.name, "memloss")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + script)
        os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
        return path

    def test_aMissingBinary_isNamedWithTheBuildCommand(self) -> None:
        missing = os.path.join(self.directory.name, "nope")
        with self.assertRaises(cp.CompareError) as raised:
            cp.run_memloss(missing, ["models"], "models --state-dict")
        self.assertIn(missing, str(raised.exception))
        self.assertIn("swift build -c release --product memloss", str(raised.exception))

    def test_anOldBinary_withoutBenchStep_isNamed(self) -> None:
        # ArgumentParser prints the parent's help with status 0 for an unknown `bench step --help`.
        old = self.fake_binary('echo "USAGE: memloss bench <subcommand>"\n')
        with self.assertRaises(cp.CompareError) as raised:
            cp.require_memloss_command(old, ["bench", "step"], "memloss bench step", "bench step")
        self.assertIn(old, str(raised.exception))
        self.assertIn("has no `bench step`", str(raised.exception))
        unknown = self.fake_binary("echo \"Error: Unknown option '--state-dict'\" >&2; exit 64\n")
        with self.assertRaises(cp.CompareError) as raised:
            cp.run_memloss(unknown, ["models", "--state-dict", "smallcnn"], "models --state-dict")
        self.assertIn("has no `models --state-dict`", str(raised.exception))

    def test_benchStep_isCalledExactly_withTheThreads_andItsMedianRead(self) -> None:
        log = os.path.join(self.directory.name, "args")
        binary = self.fake_binary(f'echo "$MEMLOSS_THREADS $*" > {log}\necho \'{{"medianStepSeconds": 1.5}}\'\n')
        args = cp.parse_args(["--memloss-bin", binary, "--batch", "16", "--attack-steps", "3", "--threads", "1",
                              "--steps", "4", "--warmup", "2"])
        self.assertEqual(cp.memloss_step_seconds(cp.ModelRequest("resnet18", 0.25), args), 1.5)
        with open(log) as f:
            self.assertEqual(f.read().split(), ["1", "bench", "step", "--method", "trades", "--model", "resnet18",
                                                "--width", "0.25", "--batch", "16", "--attack-steps", "3",
                                                "--steps", "4", "--warmup", "2", "--json"])

    def test_benchStep_withoutAMedian_orFailing_isACompareError(self) -> None:
        args = parse_quietly(["--memloss-bin", self.fake_binary("echo '{\"steps\": 3}'\n")])
        with self.assertRaises(cp.CompareError) as raised:
            cp.memloss_step_seconds(cp.ModelRequest("smallcnn", 1.0), args)
        self.assertIn("medianStepSeconds", str(raised.exception))
        args = parse_quietly(["--memloss-bin", self.fake_binary("echo 'disk full' >&2; exit 3\n")])
        with self.assertRaises(cp.CompareError) as raised:
            cp.memloss_step_seconds(cp.ModelRequest("smallcnn", 1.0), args)
        self.assertIn("status 3", str(raised.exception))
        self.assertIn("disk full", str(raised.exception))

    def test_stateDict_isReadFromModels(self) -> None:
        binary = self.fake_binary(f"cat <<'EOF'\n{json.dumps(SMALLCNN_QUARTER)}\nEOF\n")
        count, entries = cp.memloss_state_dict(binary, cp.ModelRequest("smallcnn", 0.25))
        self.assertEqual((count, len(entries)), (20062, 14))
        self.assertEqual(entries[-1], cp.StateEntry("classifier.fc3.bias", (10,), "parameter"))


@unittest.skipUnless(cp.torch is not None, "torch not installed (tools/setup-torch.sh; run with /work/venv-torch/bin/python)")
class TorchTwinTests(unittest.TestCase):
    """The PyTorch twins and the step (no timing): shapes, init, attack constraints, one update."""

    def test_twins_haveMemlosssParameterCounts_andTheCannedStateDict(self) -> None:
        counts = {label: cp.torch_state_entries(cp.build_torch_model(request, 0))[0]
                  for request in cp.parse_model_specs("smallcnn:1,resnet18:1,resnet18:0.25")
                  for label in [request.label]}
        # Models.SmallCNN / ResNet18 doc comments and `memloss models` (width 1); 0.25 from --state-dict.
        self.assertEqual(counts, {"smallcnn": 312_202, "resnet18": 11_173_962, "resnet18×0.25": 701_466})
        memloss_count, memloss_entries = canned_entries()
        torch_count, torch_entries = cp.torch_state_entries(cp.build_torch_model(cp.ModelRequest("smallcnn", 0.25), 0))
        self.assertEqual(cp.parity_problems(torch_count, torch_entries, memloss_count, memloss_entries), [])

    def test_smallCNNInit_isKaimingFanIn_zeroBiases_zeroLastLayer(self) -> None:
        model = cp.build_torch_model(cp.ModelRequest("smallcnn", 1.0), 0)
        conv4 = model.feature_extractor.conv4
        self.assertAlmostEqual(conv4.weight.std().item(), (2 / (64 * 9)) ** 0.5, delta=0.002)
        self.assertEqual(conv4.bias.abs().sum().item(), 0)
        self.assertEqual(model.classifier.fc3.weight.abs().sum().item(), 0)
        self.assertEqual(model.classifier.fc3.bias.abs().sum().item(), 0)
        self.assertNotEqual(model.classifier.fc1.bias.abs().sum().item(), 0, "FC1 keeps PyTorch's default init")

    def test_attack_staysInTheBallAndTheBox_inBothFormats(self) -> None:
        torch = cp.torch
        s = cp.TradesSettings(8 / 255, 2 / 255, 5, 6.0, 0.001, 0.05, 0.9, 0.0, 0.0, False)
        for memory_format in (torch.contiguous_format, torch.channels_last):
            model = cp.build_torch_model(cp.ModelRequest("resnet18", 0.125), 0).to(memory_format=memory_format)
            x = torch.rand((4, 3, 32, 32), generator=torch.Generator().manual_seed(1)).contiguous(
                memory_format=memory_format)
            adversarial = cp.trades_attack(model, x, s, torch.Generator().manual_seed(2), memory_format)
            self.assertLessEqual((adversarial - x).abs().max().item(), s.epsilon + 1e-6)
            self.assertGreater((adversarial - x).abs().max().item(), s.step_size, "the attack moved")
            self.assertGreaterEqual(adversarial.min().item(), 0)
            self.assertLessEqual(adversarial.max().item(), 1)
            self.assertTrue(adversarial.is_contiguous(memory_format=memory_format))
            self.assertFalse(model.training, "the attack runs in eval mode")
            self.assertTrue(all(p.grad is None for p in model.parameters()), "the attack makes no parameter gradients")

    def test_step_updatesTheParameters_andTheBatchNormStatisticsTwice(self) -> None:
        torch = cp.torch
        s = cp.TradesSettings(8 / 255, 2 / 255, 1, 6.0, 0.001, 0.05, 0.9, 0.0, 0.0, False)
        model = cp.build_torch_model(cp.ModelRequest("resnet18", 0.125), 0)
        before = model.conv1.weight.detach().clone()
        optimizer = torch.optim.SGD(model.parameters(), lr=s.learning_rate, momentum=s.momentum)
        x, y = torch.rand((4, 3, 32, 32)), torch.randint(0, 10, (4,))
        cp.trades_step(model, optimizer, x, y, s, torch.Generator().manual_seed(0), torch.contiguous_format)
        self.assertFalse(torch.equal(before, model.conv1.weight))
        self.assertEqual(model.bn1.num_batches_tracked.item(), 2, "one clean and one adversarial train-mode pass")


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIVE_BINARY = os.environ.get("MEMLOSS_BIN", os.path.join(REPOSITORY, ".build", "release", "memloss"))


@unittest.skipUnless(os.access(LIVE_BINARY, os.X_OK), f"no memloss binary at {LIVE_BINARY} (set MEMLOSS_BIN)")
class LiveBinaryTests(unittest.TestCase):
    """The real binary still answers in the form the script reads (catches drift in memloss's JSON)."""

    def test_stateDict_isTheCannedAnswer(self) -> None:
        if "--state-dict" not in cp.run_memloss(LIVE_BINARY, ["models", "--help"], "models --state-dict"):
            self.skipTest(f"{LIVE_BINARY} predates `models --state-dict`")
        out = cp.run_memloss(LIVE_BINARY, ["models", "--state-dict", "smallcnn", "--width", "0.25", "--json"],
                             "models --state-dict")
        self.assertEqual(json.loads(out), SMALLCNN_QUARTER)

    def test_printConfig_givesMemlosssTradesPresets(self) -> None:
        s = cp.memloss_settings(LIVE_BINARY, cp.ModelRequest("resnet18", 0.25), batch=16, attack_steps=3)
        self.assertAlmostEqual(s.epsilon, 8 / 255, places=6)
        self.assertAlmostEqual(s.step_size, 8 / 255 * 0.007 / 0.031, places=6)
        self.assertEqual((s.attack_steps, s.beta, s.start_std, s.momentum), (3, 6.0, 0.001, 0.9))
        small = cp.memloss_settings(LIVE_BINARY, cp.ModelRequest("smallcnn", 1.0), batch=16, attack_steps=3)
        self.assertAlmostEqual(small.epsilon, 0.3, places=6)


if __name__ == "__main__":
    unittest.main()
