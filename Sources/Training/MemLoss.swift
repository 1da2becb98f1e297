// MemLoss.swift: the MemLoss term (algorithms.md §1.4) with an in-RAM float32 memory of the
// previous epoch's adversarial examples, keyed by sample ID (K = 1). This is the reference path the
// on-disk bank (MemoryBank) will be checked against; the bank-backed window K > 1 is not wired yet.
//
//   L_mem = β′ · (1/B) Σ_{i with memory} w_i · KL(p(x_i) ‖ p(x′_i)),   w_i = 1.0000001 − p_y(x′_i)
//
// with a separate training-mode forward pass for the memory batch, gradients through both KL
// arguments and (by default, author style) through the weight.

import Foundation
import Kernels
import Layers
import Tensors

/// How the memory term weights each sample.
public enum MemoryWeighting: String, Codable, Sendable, CaseIterable {
    /// w = 1.0000001 − p_y(x′), gradient flows through w (the authors' commented "XPRIME WEIGHTED").
    case difficulty
    /// The same weight treated as a constant.
    case difficultyDetached = "difficulty-detached"
    /// w = 1.
    case uniform
}

/// Options of the MemLoss term. Defaults follow the paper's suggested first experiment (β′ = 2,
/// difficulty weighting).
public struct MemLossConfig: Codable, Sendable, Hashable {
    /// β′, the memory-term weight.
    public var beta: Float
    public var weighting: MemoryWeighting

    public static let defaultBeta: Float = 2
    /// Keeps the weight above 0 when p_y(x′) = 1 (the authors' 1.0000001).
    public static let weightOffset: Float = 1.0000001

    public init(beta: Float = MemLossConfig.defaultBeta, weighting: MemoryWeighting = .difficulty) {
        self.beta = beta; self.weighting = weighting
    }
}

/// Adversarial examples of the previous epoch, float32, keyed by sample ID (the `--mem-store ram`
/// reference path; O(N · image) memory).
public final class RAMMemory {
    private var previous: [Int: [Float]] = [:]
    private var current: [Int: [Float]] = [:]
    public let imageShape: [Int]

    public init(imageShape: [Int]) { self.imageShape = imageShape }

    /// Number of samples with a memory example available this epoch.
    public var availableCount: Int { previous.count }

    /// Stores rows of `adversarial [B, C, H, W]` for this epoch's generation.
    public func store(ids: [Int], adversarial: Tensor) {
        let row = adversarial.count / max(ids.count, 1)
        let all = adversarial.scalars
        for (i, id) in ids.enumerated() { current[id] = Array(all[(i * row)..<((i + 1) * row)]) }
    }

    /// Ends the epoch: this epoch's examples become the memory of the next.
    public func endEpoch() {
        previous = current
        current = [:]
    }

    /// The memory examples for `ids`: the batch positions that have one and their images.
    public func lookup(ids: [Int]) -> (positions: [Int], images: Tensor)? {
        var positions: [Int] = [], values: [Float] = []
        for (i, id) in ids.enumerated() {
            if let v = previous[id] { positions.append(i); values += v }
        }
        guard !positions.isEmpty else { return nil }
        return (positions, Tensor(shape: [positions.count] + imageShape, values: values))
    }
}

/// The MemLoss term as an `AuxiliaryLoss`: with no memory for the batch it does nothing at all (no
/// forward pass), so epoch 1 is exactly the base method.
public struct MemLossTerm: AuxiliaryLoss {
    public let config: MemLossConfig
    public let memory: RAMMemory

    public init(config: MemLossConfig, memory: RAMMemory) {
        self.config = config; self.memory = memory
    }

    public func apply(model: AnyClassifier, cleanLogits: Tensor, labels: [Int32], ids: [Int])
        -> (terms: [String: Float], dCleanLogits: Tensor) {
        var dClean = Tensor(zeros: cleanLogits.shape)
        guard let (positions, images) = memory.lookup(ids: ids) else { return ([:], dClean) }
        let b = cleanLogits.shape[0], k = cleanLogits.shape[1], m = positions.count
        let clean = cleanLogits.scalars
        var sub = [Float](repeating: 0, count: m * k)
        for (r, i) in positions.enumerated() { for c in 0..<k { sub[r * k + c] = clean[i * k + c] } }
        let cleanSub = Tensor(shape: [m, k], values: sub)
        let (memLogits, cache) = model.forward(images, mode: .training)
        let q = Loss.softmax(memLogits).scalars
        let ys = positions.map { labels[$0] }
        let weights: [Float] = ys.enumerated().map { r, y in
            config.weighting == .uniform ? 1 : MemLossConfig.weightOffset - q[r * k + Int(y)]
        }
        // Σ w·KL / m from the kernel; rescale to β′/B.
        let scale = config.beta * Float(m) / Float(b)
        let kl = Loss.kl(cleanSub, memLogits, sampleWeights: weights, scale: scale)
        var dMem = kl.dLogitsQ
        if config.weighting == .difficulty {
            // ∂w/∂z′_j = −q_y (δ_yj − q_j); contributes β′/B · KL_i · ∂w/∂z′.
            let f = config.beta / Float(b)
            for r in 0..<m {
                let y = Int(ys[r]), qy = q[r * k + y]
                for j in 0..<k {
                    let dw = -qy * ((j == y ? 1 : 0) - q[r * k + j])
                    dMem[flat: r * k + j] += f * kl.perSample[r] * dw
                }
            }
        }
        _ = model.backward(dMem, cache: cache, targets: .parameters)
        let dp = kl.dLogitsP.scalars
        for (r, i) in positions.enumerated() { for c in 0..<k { dClean[flat: i * k + c] = dp[r * k + c] } }
        let value = kl.loss * scale  // kernel returns Σ w·KL / m (unscaled); × β′·m/B
        return (["mem": value], dClean)
    }
}
