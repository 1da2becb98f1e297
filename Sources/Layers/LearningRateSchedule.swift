// LearningRateSchedule.swift: learning-rate (and, for OneCycle, momentum) schedules as pure
// functions of the iteration, matching the PyTorch schedulers the reference repositories use.
// Being stateless, a schedule needs no checkpoint state: resume passes the restored iteration.
// It does not touch the optimizer; the training loop calls `SGD.step(learningRate:momentum:)`.

import Foundation

/// A learning-rate schedule, evaluated from the global iteration (0-based optimizer step count).
///
/// Epoch-stepped schedules (`piecewise`, `cosine`) hold the rate constant within an epoch, where
/// `epoch = ⌊iteration / stepsPerEpoch⌋` is the 0-based epoch index (`piecewise` milestones count
/// from 1, see there), exactly like a PyTorch scheduler whose
/// `step()` is called once after each epoch. `oneCycle` changes every iteration.
public enum LearningRateSchedule: Codable, Sendable, Hashable {
    /// η = base.
    case constant

    /// Step decay (torch `MultiStepLR`-like, but with one factor per milestone). Milestones count
    /// epochs from 1, as the reference scripts read (`for epoch in range(1, epochs + 1)`, then
    /// `if epoch >= 75: lr = 0.1 · base`): milestone E applies from the E-th epoch on, so the
    /// 0-based epoch index e decays when e + 1 ≥ E.
    /// ```
    /// η(e) = base · factors[j]   for the largest milestones[j] ≤ e + 1   (e: 0-based epoch index)
    /// η(e) = base                when no milestone ≤ e + 1
    /// ```
    /// `milestones` are ascending 1-based epochs (≥ 1; a milestone ≤ 1 applies from the first
    /// epoch); `factors` has the same count. `piecewise:75,90` on the command line is
    /// `milestones: [75, 90]`: the 75th epoch (index 74) is the first at ×0.1.
    case piecewise(milestones: [Int], factors: [Float])

    /// Cosine annealing over the whole run (torch `CosineAnnealingLR`, `T_max` = total epochs,
    /// `eta_min` = 0, stepped per epoch; closed form):
    /// ```
    /// η(epoch) = base · (1 + cos(π · epoch / totalEpochs)) / 2
    /// ```
    case cosine

    /// One-cycle policy stepped per iteration (torch `OneCycleLR`, `anneal_strategy='cos'`,
    /// `three_phase=False`), over T = totalEpochs · stepsPerEpoch steps. `base` is ignored: the
    /// cycle is defined by `maxLearningRate`.
    /// ```
    /// η₀ = max / divFactor,  η_min = η₀ / finalDivFactor,  s₁ = pctStart · T − 1
    /// cosAnneal(a, b, t) = b + (a − b)/2 · (1 + cos(π t))
    /// i ≤ s₁:  η = cosAnneal(η₀, max, i / s₁),                   μ = cosAnneal(μ_max, μ_base, i / s₁)
    /// i > s₁:  η = cosAnneal(max, η_min, (i − s₁) / (T − 1 − s₁)), μ = cosAnneal(μ_base, μ_max, …)
    /// ```
    /// Defaults are PyTorch's, except `pctStart = 0.25` (HAT's choice, algorithms.md §4.3;
    /// PyTorch's default is 0.3). With `cycleMomentum`, the optimizer momentum is replaced by μ,
    /// which moves inversely to η (0.95 → 0.85 → 0.95). Iterations ≥ T are clamped to T − 1
    /// (PyTorch raises instead).
    case oneCycle(maxLearningRate: Float, pctStart: Float = 0.25, divFactor: Float = 25,
                  finalDivFactor: Float = 1e4, cycleMomentum: Bool = true,
                  baseMomentum: Float = 0.85, maxMomentum: Float = 0.95)

    /// TRADES CIFAR-10 (`train_trades_cifar10.py`): ×0.1 / ×0.01 / ×0.001 from epochs 75 / 90 / 100,
    /// counted from 1 (the script calls `adjust_learning_rate(optimizer, epoch)` with `epoch` from 1,
    /// *before* training that epoch), i.e. from 0-based epoch indices 74 / 89 / 99.
    public static let tradesCIFAR10 = LearningRateSchedule.piecewise(milestones: [75, 90, 100], factors: [0.1, 0.01, 0.001])
    /// TRADES MNIST (`train_trades_mnist.py`): from epochs 55 / 75 / 90, counted from 1.
    public static let tradesMNIST = LearningRateSchedule.piecewise(milestones: [55, 75, 90], factors: [0.1, 0.01, 0.001])

    // MARK: - Evaluation

    /// The learning rate for the optimizer step with 0-based index `iteration`.
    /// - Parameters:
    ///   - base: the configured learning rate (`SGDConfig.learningRate`); unused by `oneCycle`.
    ///   - iteration: 0-based global step, ≥ 0.
    ///   - stepsPerEpoch: optimizer steps per epoch, ≥ 1.
    ///   - totalEpochs: epochs of the whole run, ≥ 1.
    public func learningRate(base: Float, iteration: Int, stepsPerEpoch: Int, totalEpochs: Int) -> Float {
        precondition(iteration >= 0 && stepsPerEpoch >= 1 && totalEpochs >= 1,
                     "LearningRateSchedule: iteration \(iteration), stepsPerEpoch \(stepsPerEpoch), totalEpochs \(totalEpochs)")
        let epoch = iteration / stepsPerEpoch
        switch self {
        case .constant:
            return base
        case .piecewise(let milestones, let factors):
            precondition(milestones.count == factors.count,
                         "LearningRateSchedule.piecewise: \(milestones.count) milestones but \(factors.count) factors")
            var chosen: Int? = nil
            // Milestones count epochs from 1; `epoch` here is the 0-based index.
            for j in milestones.indices where milestones[j] <= epoch + 1 {
                if chosen == nil || milestones[j] >= milestones[chosen!] { chosen = j }
            }
            return chosen.map { base * factors[$0] } ?? base
        case .cosine:
            let t = Double(epoch) / Double(totalEpochs)
            return Float(Double(base) * (1 + cos(Double.pi * t)) / 2)
        case .oneCycle:
            return Float(oneCyclePoint(iteration: iteration, totalSteps: stepsPerEpoch * totalEpochs).learningRate)
        }
    }

    /// The momentum for the step with index `iteration`, or nil when this schedule leaves the
    /// optimizer's configured momentum alone (every case except `oneCycle` with `cycleMomentum`).
    /// Parameters as in `learningRate`; `base` (the configured momentum) is not used by OneCycle,
    /// which replaces it, as PyTorch's `OneCycleLR` does.
    public func momentum(base: Float, iteration: Int, stepsPerEpoch: Int, totalEpochs: Int) -> Float? {
        guard case .oneCycle(_, _, _, _, true, _, _) = self else { return nil }
        precondition(iteration >= 0 && stepsPerEpoch >= 1 && totalEpochs >= 1,
                     "LearningRateSchedule: iteration \(iteration), stepsPerEpoch \(stepsPerEpoch), totalEpochs \(totalEpochs)")
        return Float(oneCyclePoint(iteration: iteration, totalSteps: stepsPerEpoch * totalEpochs).momentum)
    }

    /// Learning rate and momentum of the one-cycle policy at `iteration` (computed in Double).
    private func oneCyclePoint(iteration: Int, totalSteps: Int) -> (learningRate: Double, momentum: Double) {
        guard case .oneCycle(let maxLR, let pctStart, let divFactor, let finalDivFactor, _, let baseM, let maxM) = self else {
            preconditionFailure("oneCyclePoint on \(self)")
        }
        let peak = Double(maxLR)
        let initial = peak / Double(divFactor)
        let minimum = initial / Double(finalDivFactor)
        let step = Double(min(iteration, totalSteps - 1))
        let phase1End = Double(pctStart) * Double(totalSteps) - 1
        let phase2End = Double(totalSteps) - 1
        func anneal(_ start: Double, _ end: Double, _ pct: Double) -> Double {
            end + (start - end) / 2 * (cos(Double.pi * pct) + 1)
        }
        // PyTorch: phase 1 if step ≤ its end step, else the last phase (which starts at phase1End).
        // A phase of zero length (pctStart·T = 1, or pctStart = 1) is taken as complete, where
        // PyTorch would divide by zero.
        if step <= phase1End {
            let pct = phase1End > 0 ? step / phase1End : 1
            return (anneal(initial, peak, pct), anneal(Double(maxM), Double(baseM), pct))
        }
        let pct = phase2End > phase1End ? (step - phase1End) / (phase2End - phase1End) : 1
        return (anneal(peak, minimum, pct), anneal(Double(baseM), Double(maxM), pct))
    }
}
