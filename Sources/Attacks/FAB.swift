// FAB.swift: the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020) as AutoAttack's
// FAB-T runs it (algorithms.md §5.4): steps towards the projection onto the linearised boundary
// between the true and a target class, biased towards the clean image, with a backward step after
// each success; it keeps the smallest adversarial found and reports it only when it is within ε.

import Foundation
import Kernels
import Layers
import Tensors

/// FAB-T's settings. Defaults: AutoAttack's standard version (α_max = 0.1, η = 1.05, β = 0.9,
/// 100 iterations, 9 targets, one run per target from the clean image; [aa] `fab_base.py`).
public struct FABConfig: Codable, Sendable, Hashable {
    /// Radius ε: a found adversarial counts only if `‖x̃ − x‖ ≤ ε` (FAB itself is unbounded).
    public var epsilon: Float
    public var norm: PerturbationNorm
    /// Iterations per target, ≥ 1.
    public var iterations: Int
    /// Targets: the 2nd … (targetCount+1)-th largest clean logits, in that order.
    public var targetCount: Int
    /// Largest weight α of the clean-image term in a step.
    public var alphaMax: Float
    /// Overshoot η of the projection step (> 1 to land past the linearised boundary).
    public var eta: Float
    /// Backward step `x ← x⁰ + β(x − x⁰)` after a success.
    public var beta: Float

    public init(epsilon: Float, norm: PerturbationNorm = .linf, iterations: Int = 100, targetCount: Int = 9,
                alphaMax: Float = 0.1, eta: Float = 1.05, beta: Float = 0.9) {
        self.epsilon = epsilon; self.norm = norm; self.iterations = iterations; self.targetCount = targetCount
        self.alphaMax = alphaMax; self.eta = eta; self.beta = beta
    }

    /// The first problem with these values for a model with `classes` outputs, or nil.
    public func problem(classes: Int) -> String? {
        if !(epsilon >= 0 && epsilon.isFinite) { return "FAB ε \(epsilon) must be a finite number ≥ 0" }
        if iterations < 1 { return "FAB iterations \(iterations) must be ≥ 1" }
        if targetCount < 1 || targetCount > classes - 1 {
            return "FAB-T target count \(targetCount) must be in 1...\(classes - 1) for \(classes) classes"
        }
        if !(alphaMax >= 0 && alphaMax <= 1) { return "FAB α_max \(alphaMax) must be in [0, 1]" }
        if !(eta > 0 && eta.isFinite) { return "FAB η \(eta) must be > 0" }
        if !(beta > 0 && beta < 1) { return "FAB β \(beta) must be in (0, 1)" }
        return nil
    }
}

/// Targeted FAB on a batch.
///
/// With `f(x) = z_t(x) − z_y(x)` (≥ 0 means the target beats the true class), its gradient `w`
/// at the iterate xᵏ and `b = w·xᵏ − f(xᵏ)`, the linearised boundary is `{v : w·v = b}`. Let
/// `proj(p)` be the smallest-norm `d` with `w·(p + d) = b` and `p + d ∈ [0, 1]ᵈ`
/// (`projectOntoHyperplane`). Each iteration:
/// ```
/// d₁ = proj(xᵏ), d₂ = proj(x⁰),  α = min(‖d₁‖/(‖d₁‖ + ‖d₂‖), α_max)
/// xᵏ⁺¹ = box((1 − α)(xᵏ + η·d₁) + α(x⁰ + η·d₂))
/// if xᵏ⁺¹ is misclassified: keep it if it is the closest so far, then xᵏ⁺¹ ← x⁰ + β(xᵏ⁺¹ − x⁰)
/// ```
/// Shapes: `images [N, C, H, W]`, `labels [N]`. Deterministic (no random start).
public enum FAB {
    public struct Result {
        /// `[N, C, H, W]`: the closest adversarial found where `fooled`, else the clean image.
        public var adversarial: Tensor
        /// Misclassified clean, or an adversarial within ε was found.
        public var fooled: [Bool]
    }

    /// FAB-T: each target in turn on the samples no earlier target fooled (within ε).
    /// - Precondition: `config.problem(classes:) == nil`; one label per image.
    public static func attack<M: Classifier>(_ model: M, images: Tensor, labels: [Int32], config: FABConfig) -> Result {
        if let p = config.problem(classes: model.classCount) { preconditionFailure("FAB: \(p)") }
        precondition(images.rank >= 2 && labels.count == images.shape[0], "FAB: \(labels.count) labels for \(images.shape)")
        let cleanLogits = model.logits(images, mode: .inference)
        var fooled = Predictions.correct(cleanLogits, labels: labels).map { !$0 }
        var best = images
        for rank in 2...(config.targetCount + 1) {
            let open = (0..<labels.count).filter { !fooled[$0] }
            if open.isEmpty { break }
            let x0 = gatherRows(images, open)
            let r = run(model, images: x0, labels: open.map { labels[$0] },
                        targets: APGD.targetClasses(gatherRows(cleanLogits, open), rank: rank), config: config)
            let hit = open.indices.filter { r.distance[$0] <= config.epsilon }
            scatterRows(&best, gatherRows(r.adversarial, hit), hit.map { open[$0] })
            for k in hit { fooled[open[k]] = true }
        }
        return Result(adversarial: best, fooled: fooled)
    }

    /// One targeted run: per sample, the closest misclassified iterate and its distance to the
    /// clean image (`+∞` and the clean image when none was found).
    static func run<M: Classifier>(_ model: M, images x0: Tensor, labels: [Int32], targets: [Int32],
                                   config: FABConfig) -> (adversarial: Tensor, distance: [Float]) {
        let rows = x0.shape[0], len = rows == 0 ? 0 : x0.count / rows
        let origin = x0.scalars
        var x = x0
        var adversarial = x0
        var distance = [Float](repeating: .infinity, count: rows)
        for _ in 0..<config.iterations {
            let (logits, cache) = model.forward(x, mode: .inference)
            let k = logits.shape[1], z = logits.scalars
            var dLogits = [Float](repeating: 0, count: z.count), f = [Float](repeating: 0, count: rows)
            for i in 0..<rows {
                let (y, t) = (Int(labels[i]), Int(targets[i]))
                f[i] = z[i * k + t] - z[i * k + y]
                dLogits[i * k + t] = 1
                dLogits[i * k + y] = -1
            }
            guard let w = model.backward(Tensor(shape: logits.shape, values: dLogits), cache: cache, targets: .input) else {
                preconditionFailure("FAB: the model returned no input gradient for targets .input")
            }
            x = Tensor(shape: x.shape, values: step(x.scalars, origin: origin, gradient: w.scalars, f: f,
                                                    rowLength: len, config: config))
            let wrong = zip(Predictions.argmax(model.logits(x, mode: .inference)), labels).enumerated()
                .filter { $0.element.0 != $0.element.1 }.map(\.offset)
            guard !wrong.isEmpty else { continue }
            var v = x.scalars
            for i in wrong {
                let range = (i * len)..<((i + 1) * len)
                let d = FAB.distance(v[range], origin[range], norm: config.norm)
                if d < distance[i] {
                    distance[i] = d
                    scatterRows(&adversarial, gatherRows(x, [i]), [i])
                }
                for j in range { v[j] = origin[j] + config.beta * (v[j] - origin[j]) }
            }
            x = Tensor(shape: x.shape, values: v)
        }
        return (adversarial, distance)
    }

    /// The FAB step for every row of the flat batch `x [B·D]` (rows run in parallel chunks).
    static func step(_ x: [Float], origin: [Float], gradient w: [Float], f: [Float], rowLength len: Int,
                     config: FABConfig) -> [Float] {
        let rows = f.count
        let out = ChunkOutput(count: x.count)
        Parallel.forEachChunk(count: rows) { range, _ in
            var local = [Float]()
            local.reserveCapacity(range.count * len)
            for i in range {
                let r = (i * len)..<((i + 1) * len)
                let (xi, oi, wi) = (Array(x[r]), Array(origin[r]), Array(w[r]))
                var b = -Double(f[i])
                for j in 0..<len { b += Double(wi[j]) * Double(xi[j]) }
                let d1 = projectOntoHyperplane(point: xi, normal: wi, offset: b, norm: config.norm)
                let d2 = projectOntoHyperplane(point: oi, normal: wi, offset: b, norm: config.norm)
                let a1 = max(Double(norm(d1, config.norm)), minimumStepNorm)
                let a2 = max(Double(norm(d2, config.norm)), minimumStepNorm)
                let alpha = Float(min(max(a1 / (a1 + a2), 0), Double(config.alphaMax)))
                for j in 0..<len {
                    let v = (1 - alpha) * (xi[j] + config.eta * d1[j]) + alpha * (oi[j] + config.eta * d2[j])
                    local.append(min(max(v, 0), 1))
                }
            }
            out.store(local, at: range.lowerBound * len)
        }
        return out.values
    }

    /// Floor on ‖d₁‖ and ‖d₂‖ in α = ‖d₁‖/(‖d₁‖ + ‖d₂‖), so α is defined when both are 0 ([aa]: 1e-8).
    static let minimumStepNorm = 1e-8

    // MARK: - Projection onto a hyperplane inside the box (pure)

    /// The smallest-norm `d` (L∞ or L2) with `w·(p + d) = b` and `0 ≤ p + d ≤ 1`.
    ///
    /// With `c = b − w·p` (flip the signs of `w` and `c` when `c < 0`), coordinate j moves in the
    /// direction of `w_j` by at most its room `r_j` (`1 − p_j` or `p_j`):
    /// ```
    /// L∞: d_j = sign(w_j)·min(δ, r_j),        smallest δ with Σ|w_j|·min(δ, r_j) = c
    /// L2: d_j = sign(w_j)·min(λ|w_j|, r_j),   smallest λ with Σ|w_j|·min(λ|w_j|, r_j) = c
    /// ```
    /// (the KKT solutions of the two problems). The left sides are piecewise linear and
    /// nondecreasing in δ (λ); sorting the breakpoints `r_j` (`r_j/|w_j|`) solves them exactly.
    /// When the box makes the plane unreachable, every coordinate moves by its full room (the
    /// point of the box closest to the plane along w). Coordinates with `w_j = 0` stay put.
    /// - Complexity: O(d log d).
    public static func projectOntoHyperplane(point p: [Float], normal w: [Float], offset b: Double, norm: PerturbationNorm) -> [Float] {
        precondition(p.count == w.count, "FAB.projectOntoHyperplane: \(p.count) coordinates, \(w.count) weights")
        var c = b
        for j in 0..<p.count { c -= Double(w[j]) * Double(p[j]) }
        var d = [Float](repeating: 0, count: p.count)
        guard c != 0 else { return d }
        let direction: Double = c > 0 ? 1 : -1
        c = abs(c)
        // Per active coordinate: its room, |w|, and the breakpoint where it saturates.
        var active = [(j: Int, room: Double, weight: Double, breakpoint: Double)]()
        active.reserveCapacity(p.count)
        var slope = 0.0
        for j in 0..<p.count where w[j] != 0 {
            let up = Double(w[j]) * direction > 0
            let room = max(up ? 1 - Double(p[j]) : Double(p[j]), 0)
            let weight = abs(Double(w[j]))
            let breakpoint = norm == .linf ? room : room / weight
            active.append((j, room, weight, breakpoint))
            slope += norm == .linf ? weight : weight * weight
        }
        active.sort { $0.breakpoint < $1.breakpoint }
        var saturated = 0.0, level = Double.infinity
        for a in active {
            if slope > 0 && saturated + slope * a.breakpoint >= c {
                level = (c - saturated) / slope
                break
            }
            saturated += a.weight * a.room
            slope -= norm == .linf ? a.weight : a.weight * a.weight
        }
        for a in active {
            let move = min(norm == .linf ? level : level * a.weight, a.room)
            let sign: Double = Double(w[a.j]) * direction > 0 ? 1 : -1
            d[a.j] = Float(sign * move)
        }
        return d
    }

    /// `‖a − b‖` (L∞ or L2) of two equal-length slices.
    static func distance(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>, norm: PerturbationNorm) -> Float {
        var m = 0.0, s = 0.0
        for (u, v) in zip(a, b) {
            let d = Double(u) - Double(v)
            m = max(m, abs(d)); s += d * d
        }
        return Float(norm == .linf ? m : s.squareRoot())
    }

    static func norm(_ d: [Float], _ norm: PerturbationNorm) -> Float {
        distance(d[...], [Float](repeating: 0, count: d.count)[...], norm: norm)
    }
}

/// A flat output buffer that parallel chunks fill with disjoint ranges (each chunk builds its
/// part locally and copies it in under the lock, so no two threads touch the array at once).
final class ChunkOutput: @unchecked Sendable {
    private(set) var values: [Float]
    private let lock = NSLock()

    init(count: Int) { values = [Float](repeating: 0, count: count) }

    func store(_ part: [Float], at offset: Int) {
        lock.lock()
        values.replaceSubrange(offset..<(offset + part.count), with: part)
        lock.unlock()
    }
}
