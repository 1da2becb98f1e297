#!/usr/bin/env python3
"""delta_anatomy.py: what real PGD δ look like to a codec, and what q8rc-like models would cost.

Reads a `memloss bench memory --dump-deltas FILE.npy` dump (float32 δ [N, C, H, W]) and its
`FILE-images.npy` (the clean images), quantises δ as q8 does (scale ε/127, round to nearest even,
clamp to ±127; docs/format/membank-v1.md §7) and prints:

* the anatomy of the values: saturated (level ±127), on the ε-anchored lattice ±(ε − kα) (a pixel
  that clipped at ±ε and came back: its start noise is gone), clipped at the [0, 1] box, and the
  rest, "noise-spread" (start noise + n·α);
* estimated bytes per entry (48-byte record header + 4-byte payload header + stream + 5-byte flush,
  padded to 8, + the 8-byte index slot) of
  (i)   q8rc as specified (§7.5): its adaptive binary model, simulated exactly, ideal code length;
  (ii)  q8rc with the start noise known to the decoder: noise-spread values coded as their step
        count n (an adaptive binary tree over n), lattice values as their k, the rest escaped to
        q8rc's 8-bit level tree, residual against the regenerated level assumed 0 (an estimate: the
        dump does not hold the noise, n is recovered as 2·round(δ / 2α));
  (iii) context variants of (i) without the noise: the interior tree conditioned on the left
        neighbour's coarse level bucket; and the floor of every coder that does not know the noise;
  (iv)  with `FILE-meta.json` naming a per-sample start (`bench memory --per-sample-start-noise
        --dump-deltas`): the start noise z regenerated exactly (Tensors.StartNoise, generator 1), and
        the static floor of any per-value coder that knows z and α: the empirical conditional
        entropy H(m, kind | z bucket) of each value's step count m = round(δ/α) and kind
        (saturated, ε-lattice, start noise + m·α exactly, other), + 8 bits per "other" value,
        the model learnt for free (no adaptation cost), no prediction across values.

The estimates are ideal adaptive code lengths (−log2 p summed with the codec's own probability
updates), within a few bytes of a range coder's output. Analysis only: nothing here is normative.

Usage: tools/delta_anatomy.py DELTAS.npy [--epsilon 8/255] [--step-fraction 1/4] [--steps 10] [--sigma 0.001]
(with DELTAS-meta.json beside the dump, ε, α and σ are read from it)
"""
import argparse
import json
import os
import math
import sys
from fractions import Fraction

import numpy as np

PROB_BITS = 12
ONE = 1 << PROB_BITS
SHIFT = 4


class Bits:
    """Adaptive binary probabilities of q8rc (12-bit, shift 4) with ideal code length."""

    def __init__(self, count):
        self.p = [ONE // 2] * count
        self.bits = 0.0

    def code(self, index, bit):
        p = self.p[index]
        if bit == 0:
            self.bits -= math.log2(p / ONE)
            self.p[index] = p + ((ONE - p) >> SHIFT)
        else:
            self.bits -= math.log2(1 - p / ONE)
            self.p[index] = p - (p >> SHIFT)

    def tree(self, base, value, depth):
        node = 1
        for b in range(depth - 1, -1, -1):
            bit = (value >> b) & 1
            self.code(base + node, bit)
            node = node * 2 + bit


def entry_bytes(stream_bits):
    stream = math.ceil(stream_bits / 8) + 5
    payload = 4 + stream
    return 48 + (payload + 7) // 8 * 8 + 8, payload


def classes_of(q):
    k = np.zeros(q.shape, dtype=np.int64)
    k[q == 127] = 1
    k[q == -127] = 2
    return k


def neighbour(k, c, y, x, axis):
    if axis == "left":
        return k[c, y, x - 1] if x > 0 else 3
    if axis == "up":
        return k[c, y - 1, x] if y > 0 else 3
    return k[c - 1, y, x] if c > 0 else 3


def q8rc_bits(q, tree_context=None):
    """(i): the q8rc model; tree_context(c, y, x) -> int selects one of several interior trees."""
    C, H, W = q.shape
    k = classes_of(q)
    trees = 1 if tree_context is None else 8
    m = Bits(64 * 2 + 256 * trees)
    for c in range(C):
        for y in range(H):
            for x in range(W):
                ctx = (neighbour(k, c, y, x, "left") * 4 + neighbour(k, c, y, x, "up")) * 4 + neighbour(k, c, y, x, "prev")
                kk = k[c, y, x]
                m.code(ctx, 0 if kk == 0 else 1)
                if kk:
                    m.code(64 + ctx, 1 if kk == 2 else 0)
                else:
                    t = 0 if tree_context is None else tree_context(c, y, x)
                    m.tree(128 + 256 * t, int(q[c, y, x]) + 127, 8)
    return m.bits


def kinds_of(delta, image, q, eps, alpha, steps):
    """0 saturated, 1 ε-lattice, 2 box, 3 noise-spread; plus n (noise) and k (lattice) per value."""
    kind = np.full(delta.shape, 3, dtype=np.int64)
    sat = np.abs(q) == 127
    adv = image + delta
    box = ((adv <= 1e-7) | (adv >= 1 - 1e-7)) & ~sat
    tol = 2e-6
    kf = (eps - np.abs(delta)) / alpha
    kr = np.rint(kf)
    lattice = (np.abs(kf - kr) * alpha < tol) & (kr >= 1) & (kr <= steps) & ~sat & ~box
    kind[sat] = 0
    kind[lattice] = 1
    kind[box] = 2
    n = (2 * np.rint(delta / (2 * alpha))).astype(np.int64)
    kl = np.where(delta > 0, kr, -kr).astype(np.int64)
    return kind, n, kl


def noise_known_bits(q, kind, n, kl, steps):
    """(ii): saturated as q8rc; interior: kind (lattice / noise / escape), then n, k or the level."""
    C, H, W = q.shape
    k = classes_of(q)
    m = Bits(64 * 2 + 64 * 4 + 64 + 64 + 256)
    KIND, NT, KT, LT = 128, 128 + 256, 128 + 256 + 64, 128 + 256 + 128
    for c in range(C):
        for y in range(H):
            for x in range(W):
                ctx = (neighbour(k, c, y, x, "left") * 4 + neighbour(k, c, y, x, "up")) * 4 + neighbour(k, c, y, x, "prev")
                kk = k[c, y, x]
                m.code(ctx, 0 if kk == 0 else 1)
                if kk:
                    m.code(64 + ctx, 1 if kk == 2 else 0)
                    continue
                kd = kind[c, y, x]
                # kind among {noise 0, lattice 1, escape 2}: two binary decisions under the left class
                sym = 0 if kd == 3 else (1 if kd == 1 else 2)
                left = neighbour(k, c, y, x, "left")
                m.code(KIND + left * 4, 0 if sym == 0 else 1)
                if sym:
                    m.code(KIND + left * 4 + 1, sym - 1)
                if sym == 0:
                    m.tree(NT, min(max(int(n[c, y, x]) // 2 + 16, 0), 31), 5)
                elif sym == 1:
                    m.tree(KT, min(max(int(kl[c, y, x]) + 16, 0), 31), 5)
                else:
                    m.tree(LT, int(q[c, y, x]) + 127, 8)
    return m.bits


def splitmix_next(state):
    """One SplitMix64 step on a vector of states (uint64, wrapping): (new state, output)."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


def start_noise(seed, generation, ids, count):
    """z [len(ids), count] of Tensors.StartNoise (generator 1) for a noise seed, vectorised over the
    samples: stream = SplitMix64.derived(seed, generation·2³² + id), then per element the sum S of
    the twelve 16-bit words of three outputs, z = (2S − 786,420)·2⁻¹⁷."""
    streams = (np.uint64(generation) << np.uint64(32)) | np.asarray(ids, dtype=np.uint64)
    with np.errstate(over="ignore"):
        state = np.uint64(seed) ^ (streams * np.uint64(0xD1B54A32D192ED03))
        state, _ = splitmix_next(state)
        _, state = splitmix_next(state)  # derived: the second output is the stream's state
        out = np.empty((len(ids), count), dtype=np.float32)
        w = np.uint64(0xFFFF)
        for j in range(count):
            total = np.zeros(len(ids), dtype=np.uint64)
            for _ in range(3):
                state, r = splitmix_next(state)
                total += (r & w) + ((r >> np.uint64(16)) & w) + ((r >> np.uint64(32)) & w) + (r >> np.uint64(48))
            out[:, j] = (2 * total.astype(np.int64) - 786420).astype(np.float32) * np.float32(2.0**-17)
    return out


def joint_entropy_bits(*arrays):
    """Total empirical entropy (bits, over all values) of the joint symbol of equally shaped arrays."""
    keys = np.stack([np.asarray(a).ravel() for a in arrays], axis=1)
    _, counts = np.unique(keys, axis=0, return_counts=True)
    return entropy(counts)


def noise_known_floor(d, q, z, eps, alpha, sigma, steps):
    """(iv): per-entry bytes of the static floor of per-value coders knowing z and α; and the kinds."""
    top = int(round(float(eps / alpha)))
    m = np.clip(np.rint(d / alpha), -top, top).astype(np.int64)
    saturated = np.abs(q) == 127
    kf = (eps - np.abs(d)) / alpha
    lattice = (np.abs(kf - np.rint(kf)) * alpha < 2e-6) & (np.rint(kf) <= steps) & ~saturated
    noise = (np.abs(d - (np.float32(sigma) * z + m.astype(np.float32) * alpha)) < 2e-6) & ~saturated & ~lattice
    kind = np.full(q.shape, 3)
    kind[saturated], kind[lattice], kind[noise] = 0, 1, 2
    zb = np.clip(np.floor(z * 2), -4, 3).astype(np.int64)
    bits = joint_entropy_bits(m, kind, zb) - joint_entropy_bits(zb) + 8 * float((kind == 3).sum())
    return entry_bytes(bits / d.shape[0])[0], bits / d.size, np.bincount(kind.ravel(), minlength=4) / kind.size


def entropy(counts):
    counts = np.asarray([c for c in counts if c > 0], dtype=np.float64)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("deltas")
    ap.add_argument("--epsilon", default="8/255")
    ap.add_argument("--step-fraction", default="1/4", help="α/ε of the attack (the bench: 1/4)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--sigma", type=float, default=0.001, help="σ of the Gaussian start")
    ap.add_argument("--limit", type=int, default=0, help="analyse only the first N entries (0: all)")
    a = ap.parse_args()
    eps = np.float32(float(Fraction(a.epsilon)))
    alpha = np.float32(eps * np.float32(float(Fraction(a.step_fraction))))
    d = np.load(a.deltas).astype(np.float32)
    stem = a.deltas[:-4] if a.deltas.endswith(".npy") else a.deltas
    img = np.load(stem + "-images.npy").astype(np.float32)
    meta = None
    if os.path.exists(stem + "-meta.json"):
        with open(stem + "-meta.json") as f:
            meta = json.load(f)
        eps, alpha = np.float32(meta["epsilon"]), np.float32(meta["stepSize"])
        a.sigma, a.steps = meta["startSigma"], meta["attackSteps"]
    if a.limit:
        d, img = d[: a.limit], img[: a.limit]
    N = d.shape[0]
    n_vals = d[0].size
    scale = np.float32(eps / np.float32(127))
    q = np.clip(np.rint(d / scale), -127, 127).astype(np.int64)

    kinds = np.zeros(4)
    totals = {"i": 0.0, "ii": 0.0, "iii_tree_left": 0.0}
    raw_bits = {"i": 0.0, "ii": 0.0, "iii_tree_left": 0.0}
    distinct = 0
    interior_hist = np.zeros(255)
    for e in range(N):
        qe = q[e]
        kind, n, kl = kinds_of(d[e], img[e], qe, eps, alpha, a.steps)
        kinds += np.bincount(kind.ravel(), minlength=4)
        distinct += len(np.unique(qe))
        interior_hist += np.bincount((qe[np.abs(qe) < 127] + 127).ravel(), minlength=255)
        b1 = q8rc_bits(qe)
        b2 = noise_known_bits(qe, kind, n, kl, a.steps)

        def left_bucket(c, y, x, qe=qe):
            if x == 0:
                return 7
            v = int(qe[c, y, x - 1])
            return 0 if v == 127 else 1 if v == -127 else 2 + min(abs(v) // 32, 3) + (0 if v >= 0 else 0)

        b3 = q8rc_bits(qe, left_bucket)
        for key, b in (("i", b1), ("ii", b2), ("iii_tree_left", b3)):
            totals[key] += entry_bytes(b)[0]
            raw_bits[key] += b
    total = kinds.sum()
    print(f"{a.deltas}: {N} entries of {d.shape[1:]}, ε = {float(eps):.6g}, α = {float(alpha):.6g}, q8 scale {float(scale):.6g}")
    for name, v in zip(["saturated ±127", "ε-lattice ±(ε−kα)", "box-clipped", "noise-spread"], kinds):
        print(f"  {name:20s} {100 * v / total:6.2f}%")
    print(f"  distinct q8 levels per entry: {distinct / N:.1f}")
    h0 = entropy(np.bincount((q.ravel() + 127), minlength=255))
    print(f"  order-0 entropy of the levels: {h0 / q.size:.3f} bits/value = {h0 / 8 / N:.0f} B/entry (stream only)")
    print("estimated bytes per entry on disk (stream bits/value):")
    labels = {"i": "(i)   q8rc as specified", "ii": "(ii)  q8rc + start noise known", "iii_tree_left": "(iii) q8rc, tree per left bucket"}
    for key in totals:
        print(f"  {labels[key]:34s} {totals[key] / N:7.0f} B   ({raw_bits[key] / N / n_vals:.3f} bits/value)")
    # Any coder that does not know the start noise pays at least its entropy on every noise-spread
    # value: a discretised N(0, (σ/scale)²) has about log2(σ/scale·√(2πe)) bits.
    h_noise = math.log2(a.sigma / float(scale) * math.sqrt(2 * math.pi * math.e))
    floor = totals["ii"] / N + kinds[3] / N * h_noise / 8
    print(f"  floor of noise-oblivious coders   ≈{floor:6.0f} B   ((ii) + {h_noise:.2f} bits per noise-spread value)")
    if meta is None or "noiseSeed" not in meta:
        print("  (iv) needs DELTAS-meta.json of a --per-sample-start-noise dump")
        return 0
    z = start_noise(int(meta["noiseSeed"]), meta["generation"], meta["sampleIDs"][:N], n_vals).reshape(d.shape)
    floor_iv, bits_iv, kinds_iv = noise_known_floor(d, q, z, eps, alpha, a.sigma, a.steps)
    print(f"  (iv) static floor, z and α known   ≈{floor_iv:6.0f} B   ({bits_iv:.3f} bits/value; kinds: saturated "
          f"{100 * kinds_iv[0]:.1f}%, lattice {100 * kinds_iv[1]:.1f}%, noise + m·α {100 * kinds_iv[2]:.1f}%, "
          f"other {100 * kinds_iv[3]:.3f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
