// WarmStart.swift: `--attack-init memory|random` (docs/warm-start.md): where the training attack
// starts, and the warm start itself, which turns the batch's memory examples (the same
// `MemoryStore.next(ids:)` read the MemLoss term uses) into per-row starting points mapped into the
// batch's views. The projection into the ε-ball and the box is the attack's (Attacks/AttackStart.swift).

import Attacks
import Datasets
import Tensors

/// Where the training attack starts (`TrainConfig.attackInit`, `--attack-init`).
public enum AttackInit: String, Codable, Sendable, CaseIterable {
    /// The method's random start (`PGDConfig.randomStart`) for every sample: the default.
    case random
    /// A sample with an entry in the memory window starts from its newest stored δ, mapped into the
    /// batch's view and projected; the others from the random start (docs/warm-start.md).
    case memory
}

// The coding of an `AttackInit` field (`TrainConfig.attackInit`): the default `.random` is left out
// when encoding and a missing key decodes as `.random`, so the default has one spelling (no key) in
// every config.json, `--print-config` and resume comparison (`TrainConfig.resumeChanges` compares
// encoded JSON), and files written before the option decode unchanged. A file's explicit "random"
// decodes as `.random` too. Synthesised `Codable` of this module picks these non-generic overloads
// over the generic `encode`/`decode`.
extension KeyedEncodingContainer {
    mutating func encode(_ value: AttackInit, forKey key: Key) throws {
        if value != .random { try encode(value.rawValue, forKey: key) }
    }
}

extension KeyedDecodingContainer {
    func decode(_ type: AttackInit.Type, forKey key: Key) throws -> AttackInit {
        try decodeIfPresent(type, forKey: key) ?? .random
    }
}

/// The warm start of one batch: for each sample with an entry in the memory window, the starting
/// image built from its **newest** present entry (window slot k = 0 is generation e − 1, the newest:
/// `TrainConfig.validate` refuses a stride > 1 with the warm start; an absent or damaged slot falls
/// through to the next).
///
/// ```
/// x′ = the entry's example in its stored view v_s      (MemoryExamples.images: clamp(v_s(x) + δ̂, 0, 1))
/// start(q) = x′(map(q))   where pixel q of the batch view v overlaps v_s (ViewMapping)
/// start(q) = x_v(q)        elsewhere: δ = 0 there (the clean pixel, not the random start)
/// ```
/// so `start − x_v` is the stored δ (clipped to the box, as x̃ was) moved into the batch's view, and 0
/// where the stored view did not see the pixel. Overlapping pixels show the same padded-frame
/// coordinate in both views, so `v_s(x)` there equals the batch's clean pixel and no dataset read is
/// needed. The attack then projects the start into the ε-ball around `x_v` and the box.
public enum WarmStart {
    /// The memory `--attack-init memory` opens when the MemLoss term is off: a record-only disk bank
    /// with K = 1 (the defaults of `MemoryStoreConfig`) in the run's `bank/`, read for the warm start
    /// only. Nil when `config` has MemLoss (its store serves both) or the random start.
    public static func bankConfig(_ config: TrainConfig) -> MemLossConfig? {
        guard config.memLoss == nil, config.attackInit == .memory else { return nil }
        return MemLossConfig(store: MemoryStoreConfig(window: 1, recordOnly: true))
    }

    /// - Parameters:
    ///   - examples: the batch's memory examples (B samples, K slots).
    ///   - clean: the batch `[B, C, H, W]` in its views `views` (B values).
    /// - Returns: the rows with an entry and their starting images (`AttackStart.images [R, C, H, W]`).
    public static func start(examples: MemoryExamples, clean: Tensor, views: [ViewParameters]) -> AttackStart {
        let b = clean.shape[0], k = examples.window
        precondition(examples.count == b && views.count == b,
                     "WarmStart: memory for \(examples.count) samples, \(views.count) views, batch \(clean.shape)")
        var rows: [Int] = []
        var entries: [Int] = []
        for i in 0..<b {
            guard let slot = (0..<k).first(where: { examples.present[i * k + $0] }) else { continue }
            rows.append(i)
            entries.append(i * k + slot)
        }
        guard !rows.isEmpty else { return .none }
        var images = clean.gatherRows(rows)
        for (j, r) in entries.enumerated() {
            ViewMapping.transfer(examples.images, row: r, from: examples.views[r], into: &images, row: j, to: views[rows[j]])
        }
        return AttackStart(rows: rows, images: images)
    }
}
