// ViewMapping.swift: moves per-pixel values (a stored perturbation δ, or an example x′) from one
// augmented view of a sample to another view of the same sample, by the pixel-index rule of
// `Dataset.renderView` (Dataset+Unsafe.swift `gather`). Index math only: it never reads a dataset.
// Used by the warm start of the training attack (docs/warm-start.md, Training/WarmStart.swift).

import Tensors

/// The correspondence between the pixels of two views (crop offset + flip, `ViewParameters`) of one
/// image of height H and width W.
///
/// A view pixel `(y, x)` shows the **padded-frame** coordinate (the unpadded image's rows and
/// columns, extended by the zero padding), exactly as `renderView` reads it:
/// ```
/// sy = y + dy
/// sx = x + dx                 (no flip)
/// sx = W − 1 − x + dx         (flip)
/// ```
/// Two pixels of two views *overlap* when they show the same padded-frame coordinate. Padding
/// coordinates (outside the image) overlap like image pixels: both views show 0 there.
///
/// Properties: mapping view A → B and back → A returns every value of A whose pixel overlaps B and
/// leaves the rest untouched (DatasetsTests `ViewMappingTests`); with equal views the mapping is
/// the identity; a pixel of B with no counterpart in A is never written.
public enum ViewMapping {
    /// The pixel of view `from` that shows the same padded-frame coordinate as pixel `(y, x)` of
    /// view `to`, or nil when that coordinate lies outside `from`'s window.
    /// - Precondition: `0 ≤ y < height`, `0 ≤ x < width`.
    @inlinable
    public static func sourcePixel(y: Int, x: Int, height: Int, width: Int, from: ViewParameters,
                                   to: ViewParameters) -> (y: Int, x: Int)? {
        let sy = y + Int(to.dy)
        let sx = to.flip ? width - 1 - x + Int(to.dx) : x + Int(to.dx)
        let fy = sy - Int(from.dy)
        let fx = from.flip ? width - 1 - (sx - Int(from.dx)) : sx - Int(from.dx)
        guard fy >= 0 && fy < height && fx >= 0 && fx < width else { return nil }
        return (fy, fx)
    }

    /// Writes row `sourceRow` of `source [N, C, H, W]` (values in view `from`) into row `targetRow` of
    /// `target [M, C, H, W]` (view `to`) wherever the two views overlap; other pixels of the target row
    /// keep their value.
    ///
    /// ```
    /// target[t, c, y, x] = source[s, c, y′, x′]   where (y′, x′) = sourcePixel(y, x, from, to) exists
    /// ```
    /// - Returns: the number of pixels (per channel) written, `0…H·W`.
    /// - Precondition: both tensors are rank 4 with the same `[C, H, W]`; the rows are in range.
    @discardableResult
    public static func transfer(_ source: Tensor, row sourceRow: Int, from: ViewParameters, into target: inout Tensor,
                                row targetRow: Int, to: ViewParameters) -> Int {
        precondition(source.rank == 4 && target.rank == 4 && Array(source.shape.dropFirst()) == Array(target.shape.dropFirst()),
                     "ViewMapping.transfer: shapes \(source.shape) and \(target.shape) differ past the batch dimension")
        precondition(sourceRow >= 0 && sourceRow < source.shape[0] && targetRow >= 0 && targetRow < target.shape[0],
                     "ViewMapping.transfer: rows \(sourceRow), \(targetRow) out of \(source.shape[0]), \(target.shape[0])")
        let c = source.shape[1], h = source.shape[2], w = source.shape[3], plane = h * w
        let src = source.rows(sourceRow..<(sourceRow + 1)).scalars
        var dst = target.rows(targetRow..<(targetRow + 1)).scalars
        var written = 0
        for y in 0..<h {
            for x in 0..<w {
                guard let p = sourcePixel(y: y, x: x, height: h, width: w, from: from, to: to) else { continue }
                written += 1
                for ch in 0..<c { dst[ch * plane + y * w + x] = src[ch * plane + p.y * w + p.x] }
            }
        }
        let base = targetRow * c * plane
        for i in 0..<(c * plane) { target[flat: base + i] = dst[i] }
        return written
    }
}
