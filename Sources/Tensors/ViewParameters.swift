// ViewParameters.swift: the one description of an augmented image view (crop offset and horizontal
// flip), shared by Datasets (which samples and renders views), MemoryBank (which stores the view
// with every perturbation) and Training (which passes it from one to the other). A value type only:
// sampling is Datasets/Augmentation.swift, rendering Datasets/Dataset+Unsafe.swift.

/// The parameters of one augmented view (the CIFAR crop with zero padding, then horizontal flip).
///
/// `dx`, `dy` are the crop window's offset from the unpadded image origin, in pixels, so with padding
/// `p` they lie in `[−p, p]`; `(0, 0, false)` is the identity. The memory bank stores these as the
/// 4 view bytes of a record, `bytes` = `[dx as u8, dy as u8, flip ? 1 : 0, 0]`
/// (docs/format/membank-v1.md), and rebuilds the view with `Dataset.renderView(id:view:)`.
public struct ViewParameters: Hashable, Codable, Sendable, CustomStringConvertible {
    public var dx: Int8
    public var dy: Int8
    public var flip: Bool

    public init(dx: Int8 = 0, dy: Int8 = 0, flip: Bool = false) {
        self.dx = dx
        self.dy = dy
        self.flip = flip
    }

    /// No crop offset, no flip.
    public static let identity = ViewParameters()

    public var isIdentity: Bool { dx == 0 && dy == 0 && !flip }

    public var description: String { "(dx \(dx), dy \(dy)\(flip ? ", flip" : ""))" }

    /// Bytes per view in a bank record.
    public static let byteCount = 4

    /// The 4 stored bytes: `[dx, dy, flip ? 1 : 0, 0]` (dx, dy as two's complement).
    public var bytes: [UInt8] { [UInt8(bitPattern: dx), UInt8(bitPattern: dy), flip ? 1 : 0, 0] }

    /// Reads the stored bytes: byte 0 = dx, 1 = dy, 2 ≠ 0 = flip; byte 3 is reserved (ignored).
    /// Shorter input reads as zero-padded.
    public init<C: Collection>(bytes: C) where C.Element == UInt8 {
        let b = Array(bytes.prefix(ViewParameters.byteCount)) + Array(repeating: 0, count: max(0, ViewParameters.byteCount - bytes.count))
        self.init(dx: Int8(bitPattern: b[0]), dy: Int8(bitPattern: b[1]), flip: b[2] != 0)
    }
}
