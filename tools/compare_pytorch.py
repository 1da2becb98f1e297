#!/usr/bin/env python3
"""compare_pytorch.py: time memloss's whole TRADES training step against the same step in
PyTorch-CPU, side by side in one run, and print the table of docs/performance.md.

First, for every model of --models (NAME:WIDTH, NAME in smallcnn, resnet18), it builds memloss's
architecture in PyTorch with memloss's initialisation and checks parity with the memloss binary
(`memloss models --state-dict NAME --width W --json`: parameter count and every state_dict name,
shape and kind, in order; any difference stops the run) and reads memloss's TRADES settings
(`memloss train --method trades ... --print-config`). Then for each model, sequentially (never two
timings at once):
  1. times the TRADES step as memloss runs it (Sources/Training/Methods/TRADESMethod.swift,
     Sources/Attacks/PGD.swift TRADESAttack, algorithms.md §2) in NCHW and in channels_last:
     warm-up steps excluded, the median of --steps;
  2. runs `memloss bench step --method trades ... --json` with MEMLOSS_THREADS=--threads and reads
     its `medianStepSeconds` (skipped with --torch-only).
Then prints model, memloss s/step, torch NCHW s/step, torch channels_last s/step and
memloss / faster-torch, with the CPU and the date (--json: the same as one JSON object).

It does not time anything else, and its pure parts (flags, model specs, parity, table) run without
torch (tools/test_compare_pytorch.py). Needs the venv of tools/setup-torch.sh:
  /work/venv-torch/bin/python tools/compare_pytorch.py [--models smallcnn:1,resnet18:0.25] [--json]
Exits 0 on success, 1 on a failed check or command, 2 on bad flags.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # the pure parts (flags, specs, parity, table) and their tests need no torch
    torch = None

# MARK: - Model specs and settings (pure)

ARCHITECTURES = ("smallcnn", "resnet18")
DEFAULT_MODELS = "smallcnn:1,resnet18:0.25,resnet18:1"
CLASSES = 10

# The training ε per architecture's dataset (MNIST for SmallCNN, CIFAR-10 for ResNet-18). The other
# settings are memloss's own: `memloss train --method trades --epsilon E --print-config` resolves α
# (ε · 0.007/0.031, TrainConfig.applyAttackSettings), β = 6, the Gaussian 0.001 start and the default
# SGD (momentum 0.9, weight decay 0), and settings_from_config reads them from its JSON.
EPSILON_TEXT_BY_ARCHITECTURE = {"smallcnn": "0.3", "resnet18": "8/255"}


class CompareError(Exception):
    """A failed check or command; main() prints it and exits 1."""


@dataclass(frozen=True)
class ModelRequest:
    """One entry of --models: an architecture and its width multiplier."""
    architecture: str
    width: float

    @property
    def label(self) -> str:
        """memloss's ModelSpec.name: `resnet18`, `resnet18×0.25`."""
        return self.architecture if self.width == 1 else f"{self.architecture}×{format_width(self.width)}"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """[C, H, W] of one image (ModelSpec.inputShape)."""
        return (1, 28, 28) if self.architecture == "smallcnn" else (3, 32, 32)


@dataclass(frozen=True)
class TradesSettings:
    """The TRADES step's hyperparameters (paper symbols; pixels in [0, 1])."""
    epsilon: float
    step_size: float
    attack_steps: int
    beta: float
    start_std: float
    learning_rate: float
    momentum: float
    dampening: float
    weight_decay: float
    nesterov: bool


def format_width(width: float) -> str:
    """1.0 → "1", 0.25 → "0.25", 1/3 → "0.3333333333333333": the shortest text that reads back as
    the same double, so memloss's `--width` builds the same widths as this script."""
    text = repr(float(width))
    return text[:-2] if text.endswith(".0") else text


def parse_model_specs(text: str) -> list[ModelRequest]:
    """Parses `smallcnn:1,resnet18:0.25` (a missing `:WIDTH` means 1); raises ValueError naming --models."""
    requests = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"--models '{text}': empty entry; expected NAME:WIDTH[,NAME:WIDTH...]")
        name, _, width_text = item.partition(":")
        name = name.strip().lower()
        if name not in ARCHITECTURES:
            raise ValueError(f"--models entry '{item}': model '{name}' is not one of {', '.join(ARCHITECTURES)}")
        try:
            width = float(width_text) if width_text else 1.0
        except ValueError:
            raise ValueError(f"--models entry '{item}': width '{width_text}' is not a number") from None
        if not 0 < width <= 16:
            raise ValueError(f"--models entry '{item}': width {width_text} must be in (0, 16]")
        requests.append(ModelRequest(name, width))
    return requests


def scaled_width(channels: int, width: float) -> int:
    """memloss's scaledWidth: round(channels · width) half away from zero (Swift's `.rounded()`;
    Python's round() rounds halves to even), at least 1."""
    product = channels * width
    whole = math.floor(product)
    return max(1, int(whole + 1 if product - whole >= 0.5 else whole))


def settings_from_config(config: dict[str, Any], attack_steps: int) -> TradesSettings:
    """TRADES settings from `memloss train --print-config` JSON; raises CompareError on a missing field."""
    try:
        method, optimizer = config["method"], config["optimizer"]
        attack = method["attack"]
        if method.get("method") != "trades":
            raise CompareError(f"memloss --print-config: method is '{method.get('method')}', expected 'trades'")
        start = attack.get("randomStart", {})
        std = start.get("gaussian", {}).get("std") if isinstance(start, dict) else None
        if std is None:
            raise CompareError(f"memloss --print-config: attack randomStart {start!r} is not a Gaussian start")
        return TradesSettings(epsilon=float(attack["epsilon"]), step_size=float(attack["stepSize"]),
                              attack_steps=attack_steps, beta=float(method["beta"]), start_std=float(std),
                              learning_rate=float(optimizer["learningRate"]), momentum=float(optimizer["momentum"]),
                              dampening=float(optimizer["dampening"]), weight_decay=float(optimizer["weightDecay"]),
                              nesterov=bool(optimizer["nesterov"]))
    except KeyError as e:
        raise CompareError(f"memloss --print-config: field {e} missing from the resolved config") from None


def settings_json(s: TradesSettings) -> dict[str, Any]:
    """The settings with the report's camelCase keys."""
    return {"epsilon": s.epsilon, "stepSize": s.step_size, "attackSteps": s.attack_steps, "beta": s.beta,
            "startStd": s.start_std, "learningRate": s.learning_rate, "momentum": s.momentum,
            "dampening": s.dampening, "weightDecay": s.weight_decay, "nesterov": s.nesterov}


# MARK: - Parity (pure)

@dataclass(frozen=True)
class StateEntry:
    """One state_dict entry: name, shape and kind (parameter, buffer, counter)."""
    name: str
    shape: tuple[int, ...]
    kind: str


def entries_from_memloss_json(report: dict[str, Any]) -> tuple[int, list[StateEntry]]:
    """(parameter count, entries) of `memloss models --state-dict M --json`."""
    try:
        entries = [StateEntry(e["name"], tuple(e["shape"]), e["kind"]) for e in report["state_dict"]]
        return int(report["parameters"]), entries
    except (KeyError, TypeError) as e:
        raise CompareError(f"memloss models --state-dict: unexpected JSON ({type(e).__name__}: {e})") from None


def parity_problems(torch_count: int, torch_entries: list[StateEntry], memloss_count: int,
                    memloss_entries: list[StateEntry]) -> list[str]:
    """Every difference between the two models' parameter counts and state_dicts (empty = equal)."""
    problems = []
    if torch_count != memloss_count:
        problems.append(f"parameter count: torch {torch_count:,}, memloss {memloss_count:,}")
    torch_by_name = {e.name: e for e in torch_entries}
    memloss_by_name = {e.name: e for e in memloss_entries}
    for name in sorted(memloss_by_name.keys() - torch_by_name.keys()):
        problems.append(f"{name}: in memloss, missing in torch")
    for name in sorted(torch_by_name.keys() - memloss_by_name.keys()):
        problems.append(f"{name}: in torch, missing in memloss")
    for e in memloss_entries:
        t = torch_by_name.get(e.name)
        if t is not None and (t.shape != e.shape or t.kind != e.kind):
            problems.append(f"{e.name}: torch {t.kind} {list(t.shape)}, memloss {e.kind} {list(e.shape)}")
    if not problems and [e.name for e in torch_entries] != [e.name for e in memloss_entries]:
        problems.append("same entries in a different order")
    return problems


def check_parity(label: str, torch_count: int, torch_entries: list[StateEntry], memloss_count: int,
                 memloss_entries: list[StateEntry]) -> None:
    """Raises CompareError listing every difference (the comparison is void on a different model)."""
    problems = parity_problems(torch_count, torch_entries, memloss_count, memloss_entries)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CompareError(f"{label}: the PyTorch model differs from memloss's:\n  {shown}")


# MARK: - Table (pure)

@dataclass
class ResultRow:
    """One model's step times in seconds (None = not measured)."""
    model: str
    parameters: int
    memloss: Optional[float]
    torch_nchw: float
    torch_channels_last: float

    @property
    def faster_torch(self) -> float:
        return min(self.torch_nchw, self.torch_channels_last)

    @property
    def ratio(self) -> Optional[float]:
        """memloss / faster torch: < 1 means memloss's step is faster."""
        return None if self.memloss is None else self.memloss / self.faster_torch


def format_seconds(value: Optional[float]) -> str:
    """Seconds with 3 significant digits, `-` when not measured."""
    if value is None:
        return "-"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.2e}"


def format_ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def parse_lscpu(text: str) -> dict[str, Any]:
    """CPU model name, cores (cores per socket × sockets, else CPUs) and cpu family from `lscpu`."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())

    def number(key: str) -> Optional[int]:
        try:
            return int(fields[key])
        except (KeyError, ValueError):
            return None

    per_socket, sockets, cpus = number("Core(s) per socket"), number("Socket(s)"), number("CPU(s)")
    cores = per_socket * sockets if per_socket and sockets else cpus
    return {"cpu": fields.get("Model name", "unknown"), "cores": cores,
            "cpuFamily": fields.get("CPU family", "unknown")}


def format_table(rows: list[ResultRow], machine: dict[str, Any], date: str, header: dict[str, Any]) -> str:
    """The human-readable report: a machine line, a settings line, then one line per model."""
    columns = ("model", "memloss s/step", "torch NCHW", "torch channels_last", "ratio")
    cells = [(r.model, format_seconds(r.memloss), format_seconds(r.torch_nchw),
              format_seconds(r.torch_channels_last), format_ratio(r.ratio)) for r in rows]
    widths = [max(len(c[i]) for c in [columns, *cells]) for i in range(len(columns))]
    lines = [f"{date}  {machine['cpu']}, {machine['cores']} cores, cpu family {machine['cpuFamily']}",
             ", ".join(f"{k} {v}" for k, v in header.items()), ""]
    for c in [columns, *cells]:
        lines.append("  ".join([c[0].ljust(widths[0])] + [c[i].rjust(widths[i]) for i in range(1, len(c))]))
    lines.append("")
    lines.append("ratio = memloss / faster torch layout; below 1 memloss's step is faster.")
    return "\n".join(lines)


def report_json(rows: list[ResultRow], machine: dict[str, Any], date: str, header: dict[str, Any],
                settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The --json report: the table's content, plus every model's resolved TRADES settings."""
    return {
        "date": date, "machine": machine, **header,
        "rows": [{"model": r.model, "parameters": r.parameters, "memlossSecondsPerStep": r.memloss,
                  "torchNCHWSecondsPerStep": r.torch_nchw, "torchChannelsLastSecondsPerStep": r.torch_channels_last,
                  "ratio": r.ratio, "settings": settings.get(r.model)} for r in rows],
    }


# MARK: - Flags

def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parses the flags; argparse exits 2 with a message naming the flag on bad input."""
    p = argparse.ArgumentParser(prog="compare_pytorch.py",
                                description="Time memloss's TRADES step against PyTorch-CPU's, side by side.")
    p.add_argument("--models", default=DEFAULT_MODELS, type=parse_model_specs_flag,
                   help=f"comma-separated NAME:WIDTH, NAME in {', '.join(ARCHITECTURES)} (default {DEFAULT_MODELS})")
    p.add_argument("--batch", type=positive_int, default=128, help="batch size (default 128)")
    p.add_argument("--attack-steps", type=positive_int, default=10, help="TRADES KL-PGD steps (default 10)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads and MEMLOSS_THREADS (default 2)")
    p.add_argument("--steps", type=positive_int, default=3, help="timed steps; the median counts (default 3)")
    p.add_argument("--warmup", type=non_negative_int, default=1, help="untimed steps first (default 1)")
    p.add_argument("--memloss-bin", default=".build/release/memloss", help="the memloss binary")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the data and the torch init")
    p.add_argument("--torch-only", action="store_true", help="skip `memloss bench step` (parity still checked)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return p.parse_args(argv)


def parse_model_specs_flag(text: str) -> list[ModelRequest]:
    try:
        return parse_model_specs(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be an integer ≥ 1")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be an integer ≥ 0")
    return value


# MARK: - The memloss binary

def run_memloss(binary: str, args: list[str], what: str, env: Optional[dict[str, str]] = None) -> str:
    """Runs `binary args`, returns stdout; a missing binary or subcommand is a CompareError naming both."""
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        raise CompareError(f"memloss binary '{binary}' not found or not executable; build it with "
                           f"`swift build -c release --product memloss` or pass --memloss-bin")
    try:
        done = subprocess.run([binary, *args], capture_output=True, text=True, env=env)
    except OSError as e:
        raise CompareError(f"memloss binary '{binary}': cannot run it ({e})") from None
    if done.returncode != 0:
        err = done.stderr.strip()
        if "Unexpected argument" in err or "Unknown option" in err:
            raise CompareError(f"memloss binary '{binary}' has no `{what}` (it is older than this script); "
                               f"rebuild it with `swift build -c release --product memloss`\n{err}")
        raise CompareError(f"`{binary} {' '.join(args)}` failed with status {done.returncode}:\n{err}")
    return done.stdout


def require_memloss_command(binary: str, words: list[str], marker: str, what: str) -> None:
    """Fails early (before any timing) when the help of `binary words` lacks `marker`: ArgumentParser
    answers `bench step --help` with the parent's help (status 0) when `step` does not exist."""
    help_text = run_memloss(binary, [*words, "--help"], what)
    if marker not in help_text:
        raise CompareError(f"memloss binary '{binary}' has no `{what}` (it is older than this script); "
                           f"rebuild it with `swift build -c release --product memloss`")


def memloss_state_dict(binary: str, request: ModelRequest) -> tuple[int, list[StateEntry]]:
    out = run_memloss(binary, ["models", "--state-dict", request.architecture, "--width", format_width(request.width),
                               "--classes", str(CLASSES), "--json"], "models --state-dict")
    return entries_from_memloss_json(json.loads(out))


def memloss_settings(binary: str, request: ModelRequest, batch: int, attack_steps: int) -> TradesSettings:
    """The TRADES settings memloss resolves for this model (`memloss train --print-config`)."""
    out = run_memloss(binary, ["train", "--method", "trades", "--model", request.architecture,
                               "--width", format_width(request.width),
                               "--epsilon", EPSILON_TEXT_BY_ARCHITECTURE[request.architecture],
                               "--batch-size", str(batch), "--print-config"], "train --print-config")
    return settings_from_config(json.loads(out), attack_steps)


def memloss_bench_command(request: ModelRequest, args: argparse.Namespace) -> list[str]:
    """The `memloss bench step` arguments, exactly as that command documents them."""
    return ["bench", "step", "--method", "trades", "--model", request.architecture,
            "--width", format_width(request.width), "--batch", str(args.batch),
            "--attack-steps", str(args.attack_steps), "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--json"]


def memloss_step_seconds(request: ModelRequest, args: argparse.Namespace) -> float:
    """Runs `memloss bench step` with MEMLOSS_THREADS and reads `medianStepSeconds`."""
    env = dict(os.environ, MEMLOSS_THREADS=str(args.threads))
    out = run_memloss(args.memloss_bin, memloss_bench_command(request, args), "bench step", env=env)
    try:
        value = json.loads(out)["medianStepSeconds"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CompareError(f"memloss bench step: no number `medianStepSeconds` in its JSON ({e})") from None
    if not isinstance(value, (int, float)) or not value > 0:
        raise CompareError(f"memloss bench step: medianStepSeconds = {value!r}, expected a positive number")
    return float(value)


# MARK: - PyTorch models (memloss's architectures and initialisation)

if torch is not None:
    class SmallCNN(nn.Module):
        """SmallCNN.swift: `feature_extractor` (four 3×3 convs with bias, no padding, two 2×2 max
        pools) then `classifier` (FC 200 → ReLU → Dropout(0.5) → FC 200 → ReLU → FC classes).
        Shapes: [N, 1, 28, 28] → [N, classes]."""

        def __init__(self, width: float) -> None:
            super().__init__()
            c32, c64, f200 = scaled_width(32, width), scaled_width(64, width), scaled_width(200, width)
            side = ((28 - 4) // 2 - 4) // 2
            self.feature_extractor = nn.Sequential(OrderedDict([
                ("conv1", nn.Conv2d(1, c32, 3)), ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(c32, c32, 3)), ("relu2", nn.ReLU()), ("maxpool1", nn.MaxPool2d(2)),
                ("conv3", nn.Conv2d(c32, c64, 3)), ("relu3", nn.ReLU()),
                ("conv4", nn.Conv2d(c64, c64, 3)), ("relu4", nn.ReLU()), ("maxpool2", nn.MaxPool2d(2)),
            ]))
            self.classifier = nn.Sequential(OrderedDict([
                ("fc1", nn.Linear(c64 * side * side, f200)), ("relu1", nn.ReLU()), ("drop", nn.Dropout(0.5)),
                ("fc2", nn.Linear(f200, f200)), ("relu2", nn.ReLU()), ("fc3", nn.Linear(f200, CLASSES)),
            ]))
            # memloss's (and TRADES') init: convs N(0, 2/fanIn) (kaiming_normal_: mode fan_in, gain √2)
            # with zero bias; FC1/FC2 PyTorch default; FC3 weight and bias zero.
            for m in self.feature_extractor.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight)
                    nn.init.zeros_(m.bias)
            nn.init.zeros_(self.classifier.fc3.weight)
            nn.init.zeros_(self.classifier.fc3.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(torch.flatten(self.feature_extractor(x), 1))

    class BasicBlock(nn.Module):
        """ResidualBlock.swift BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)),
        shortcut = bn(conv1×1(x)) when the stride or width changes. Names conv1, bn1, conv2, bn2,
        shortcut.0, shortcut.1; PyTorch-default init."""

        def __init__(self, in_planes: int, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = nn.Sequential()
            if stride != 1 or in_planes != planes:
                self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                              nn.BatchNorm2d(planes))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = F.relu(self.bn1(self.conv1(x)))
            return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet18(nn.Module):
        """ResNet.swift ResNet18 (CIFAR variant): 3×3 stem without bias → BN → ReLU → 4 stages of 2
        BasicBlocks (64, 128, 256, 512 × width; strides 1, 2, 2, 2) → 4×4 average pool → Linear.
        Shapes: [N, 3, 32, 32] → [N, classes]. PyTorch-default init (as the HAT code and memloss)."""

        def __init__(self, width: float) -> None:
            super().__init__()
            w = [scaled_width(c, width) for c in (64, 128, 256, 512)]
            self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(w[0])
            in_planes = w[0]
            for stage, planes in enumerate(w):
                blocks = []
                for i in range(2):
                    blocks.append(BasicBlock(in_planes, planes, 2 if i == 0 and stage > 0 else 1))
                    in_planes = planes
                setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            self.linear = nn.Linear(w[3], CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
            return self.linear(torch.flatten(F.avg_pool2d(out, 4), 1))


def build_torch_model(request: ModelRequest, seed: int) -> Any:
    """The torch twin of `request`, initialised from `seed`."""
    torch.manual_seed(seed)
    return SmallCNN(request.width) if request.architecture == "smallcnn" else ResNet18(request.width)


def torch_state_entries(model: Any) -> tuple[int, list[StateEntry]]:
    """(parameter count, state_dict entries) of a torch model, with memloss's kind names."""
    parameters = {name for name, _ in model.named_parameters()}
    entries = []
    for name, tensor in model.state_dict().items():
        kind = "parameter" if name in parameters else ("counter" if name.endswith("num_batches_tracked") else "buffer")
        entries.append(StateEntry(name, tuple(tensor.shape), kind))
    return sum(p.numel() for p in model.parameters()), entries


# MARK: - The TRADES step in PyTorch

def trades_attack(model: Any, x: Any, s: TradesSettings, generator: Any, memory_format: Any) -> Any:
    """KL-PGD as Attacks.TRADESAttack: eval mode, the clean softmax once (held constant),
    x̃⁰ = x + std·N(0, I) (not clamped), then S × [g = ∇_x̃ Σ_i KL(p(x_i) ‖ p(x̃_i)) (input gradient
    only: autograd.grad w.r.t. x̃, no parameter gradients), x̃ ← x̃ + α·sign(g), clip to
    [x − ε, x + ε], clamp to [0, 1]]. Shapes: x and the result [N, C, H, W]."""
    model.eval()
    with torch.no_grad():
        clean = F.softmax(model(x), dim=1)
    noise = torch.randn(x.shape, generator=generator).contiguous(memory_format=memory_format)
    adversarial = x + s.start_std * noise
    for _ in range(s.attack_steps):
        adversarial.requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(adversarial), dim=1), clean, reduction="sum")
        (gradient,) = torch.autograd.grad(kl, [adversarial])
        with torch.no_grad():
            adversarial = adversarial + s.step_size * gradient.sign()
            adversarial = torch.min(torch.max(adversarial, x - s.epsilon), x + s.epsilon).clamp_(0, 1)
    return adversarial.detach()


def trades_step(model: Any, optimizer: Any, x: Any, y: Any, s: TradesSettings, generator: Any,
                memory_format: Any) -> None:
    """One whole TRADES step as TRADESMethod: the attack, then train mode with ONE clean forward
    feeding CE and the (not detached) KL target, one adversarial forward,
    L = CE + β · KL(batchmean), backward, SGD."""
    adversarial = trades_attack(model, x, s, generator, memory_format)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    kl = F.kl_div(F.log_softmax(model(adversarial), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
    loss = F.cross_entropy(logits, y) + s.beta * kl
    loss.backward()
    optimizer.step()


def time_steps(step: Callable[[], None], warmup: int, steps: int) -> float:
    """Median wall seconds of `steps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_torch_step(request: ModelRequest, s: TradesSettings, args: argparse.Namespace, channels_last: bool) -> float:
    """Median seconds per TRADES step of a freshly built torch model in one memory format, on one
    fixed random batch (x ~ U[0, 1), labels uniform; seeded)."""
    model = build_torch_model(request, args.seed)
    data = torch.Generator().manual_seed(args.seed + 1)
    x = torch.rand((args.batch, *request.input_shape), generator=data)
    y = torch.randint(0, CLASSES, (args.batch,), generator=data)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = x.contiguous(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=s.learning_rate, momentum=s.momentum, dampening=s.dampening,
                                weight_decay=s.weight_decay, nesterov=s.nesterov)
    noise = torch.Generator().manual_seed(args.seed + 2)
    return time_steps(lambda: trades_step(model, optimizer, x, y, s, noise, memory_format), args.warmup, args.steps)


# MARK: - Main

def machine_info() -> dict[str, Any]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, env=dict(os.environ, LC_ALL="C")).stdout
    except OSError:
        text = ""
    info = parse_lscpu(text)
    if info["cores"] is None:
        info["cores"] = os.cpu_count()
    return info


def prepare_model(request: ModelRequest, args: argparse.Namespace,
                  log: Callable[[str], None]) -> tuple[int, TradesSettings]:
    """The parity check and memloss's settings for one model (before any timing, so a mismatch
    stops the run at once, not after minutes of timing); returns (parameter count, settings)."""
    memloss_count, memloss_entries = memloss_state_dict(args.memloss_bin, request)
    torch_count, torch_entries = torch_state_entries(build_torch_model(request, args.seed))
    check_parity(request.label, torch_count, torch_entries, memloss_count, memloss_entries)
    log(f"{request.label}: parity ok ({torch_count:,} parameters, {len(torch_entries)} state_dict entries)")
    s = memloss_settings(args.memloss_bin, request, args.batch, args.attack_steps)
    log(f"{request.label}: ε {s.epsilon:.6g}, α {s.step_size:.6g}, {s.attack_steps} steps, β {s.beta:g}, "
        f"SGD lr {s.learning_rate:g} momentum {s.momentum:g} weight decay {s.weight_decay:g}")
    return torch_count, s


settle_seconds = 2.0
"""Idle pause between two timings, so that no thread of the previous one still runs."""


def time_model(request: ModelRequest, parameters: int, s: TradesSettings, args: argparse.Namespace,
               log: Callable[[str], None]) -> ResultRow:
    """memloss (unless --torch-only), torch NCHW, then torch channels_last, one after the other.

    memloss runs first: once torch has run in this process its worker threads linger (they spin
    before they sleep), and a SmallCNN `bench step` run right after torch measured 1.5 s/step
    against 1.16 s alone. A pause of `settle_seconds` separates the timings as well.
    """
    memloss = None
    if not args.torch_only:
        memloss = memloss_step_seconds(request, args)
        log(f"{request.label}: memloss {format_seconds(memloss)} s/step")
        time.sleep(settle_seconds)
    nchw = time_torch_step(request, s, args, channels_last=False)
    log(f"{request.label}: torch NCHW {format_seconds(nchw)} s/step")
    time.sleep(settle_seconds)
    channels_last = time_torch_step(request, s, args, channels_last=True)
    log(f"{request.label}: torch channels_last {format_seconds(channels_last)} s/step")
    time.sleep(settle_seconds)
    return ResultRow(request.label, parameters, memloss, nchw, channels_last)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if torch is None:
        print("compare_pytorch: cannot import torch; run tools/setup-torch.sh and use /work/venv-torch/bin/python",
              file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    log = (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        require_memloss_command(args.memloss_bin, ["models"], "--state-dict", "models --state-dict")
        if not args.torch_only:
            require_memloss_command(args.memloss_bin, ["bench", "step"], "memloss bench step", "bench step")
        prepared = [(request, *prepare_model(request, args, log)) for request in args.models]
        rows = [time_model(request, count, s, args, log) for request, count, s in prepared]
    except CompareError as e:
        print(f"compare_pytorch: {e}", file=sys.stderr)
        return 1
    settings = {request.label: settings_json(s) for request, _, s in prepared}
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = {"torch": torch.__version__, "threads": args.threads, "batch": args.batch,
              "attackSteps": args.attack_steps, "steps": args.steps, "warmup": args.warmup}
    if args.json:
        print(json.dumps(report_json(rows, machine_info(), date, header, settings), indent=2, sort_keys=True,
                         ensure_ascii=False))
    else:
        print(format_table(rows, machine_info(), date, header))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
