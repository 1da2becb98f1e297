// AttackStart.swift: a per-sample override of a PGD attack's starting point (the warm start from
// the memory bank, docs/warm-start.md): chosen rows start from given images, projected into the
// ε-ball and the [0, 1] box; the other rows keep the config's random start. Where the given images
// come from (the bank, the view mapping) is the trainer's business; this file only applies them.

import Tensors

/// Starting points for some rows of an attack batch.
///
/// ```
/// x̃⁰ = start(x)                           the config's RandomStart, drawn for the whole batch first
/// x̃⁰_r = Π(images_j)                      for each (r, j) = (rows[j], j): overwritten, then projected
/// ```
/// Π is the projection of every PGD step (`PGD.project`): Π_box ∘ Π_ε for L∞, Π_box ∘ Π_ε ∘ Π_box
/// for L2.
/// Shapes: `images [R, C, H, W]` with R = `rows.count`, row j is the start of batch row `rows[j]`.
/// The random start is drawn in full before the overwrite, so the random stream, and every row not
/// in `rows`, are exactly those of the attack without an override: with no rows the attack is the
/// random-start attack bit for bit.
public struct AttackStart: Sendable {
    /// Batch rows that start from `images`, strictly increasing.
    public let rows: [Int]
    /// `[rows.count, C, H, W]`: the starting images of those rows (before projection).
    public let images: Tensor
    /// The unit start noise z of every row, `[N, C, H, W]` (Tensors.StartNoise: a per-sample function
    /// of seed, epoch and sample ID), used instead of drawing the config's Gaussian start from the
    /// attack's random stream: x̃⁰ = x + σ·z. nil: the draw. Only a `.gaussian` start uses it (other
    /// starts ignore it); the rows in `rows` are still overwritten afterwards.
    public var noise: Tensor?

    /// - Precondition: `rows` strictly increasing, `images.shape[0] == rows.count`.
    public init(rows: [Int], images: Tensor, noise: Tensor? = nil) {
        precondition(images.rank >= 1 && images.shape[0] == rows.count,
                     "AttackStart: \(rows.count) rows for starting images \(images.shape)")
        precondition(zip(rows, rows.dropFirst()).allSatisfy { $0 < $1 }, "AttackStart: rows must be strictly increasing")
        self.rows = rows
        self.images = images
        self.noise = noise
    }

    /// No override: every row keeps the random start.
    public static let none = AttackStart(rows: [], images: Tensor(zeros: [0]))

    /// No row overwritten and no given noise.
    public var isEmpty: Bool { rows.isEmpty && noise == nil }

    /// Overwrites rows `rows` of the random start `x [N, C, H, W]` with `images`, projected into the
    /// `config` ball around `center` and the [0, 1] box with the projection every PGD step uses
    /// (`PGD.project`): L∞ ball, then box; L2 box, then ball, then box (Perturbation.projectL2).
    /// - Precondition: the rows are below N and `images` has `x`'s trailing shape.
    func apply(to x: inout Tensor, center: Tensor, config: PGDConfig) {
        guard !rows.isEmpty else { return }
        precondition(rows.last! < x.shape[0] && Array(images.shape.dropFirst()) == Array(x.shape.dropFirst()),
                     "AttackStart: rows up to \(rows.last!) and images \(images.shape) for a batch \(x.shape)")
        var start = images
        PGD.project(&start, center: gatherRows(center, rows), config: config)
        scatterRows(&x, start, rows)
    }
}
