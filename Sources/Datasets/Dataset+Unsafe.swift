// Dataset+Unsafe.swift: the pixel loops: gather one image from the mapping through its strided layout,
// crop (zero padding) and flip it, and write uint8 CHW bytes or float CHW values (x / 255); and the
// one-time quantization of float `.npy` pixels in [0, 1] to bytes. This is the only code that turns
// file bytes into pixels, so a batch row and a rebuilt view are bit-identical.
// Pointers stay inside these functions; the public entry points take arrays and Tensors.

import SystemIO
import Tensors

/// `byteToUnit[b] == Float(b) / 255`, correctly rounded: a table so the conversion costs one load and
/// every code path produces the same bits.
private let byteToUnit: [Float] = (0..<256).map { Float($0) / 255 }

extension Dataset {
    /// Writes the view `view` of sample `id` into row `row` of `images` (`[N, C, H, W]`), as float CHW
    /// in [0, 1].
    ///
    /// The view is the CIFAR crop-and-flip: pad the image with zeros, take the H×W window whose origin
    /// is offset by (dx, dy) from the unpadded origin, then mirror it horizontally if `flip`:
    /// ```
    /// out[c, y, x] = img[c, y + dy, x' + dx] / 255,   x' = flip ? W − 1 − x : x
    ///                (0 where y + dy or x' + dx falls outside the image)
    /// ```
    /// - Precondition: `images.shape == [N, C, H, W]` for this dataset's C, H, W; `row < N`; valid `id`.
    public func renderView(id: Int, view: ViewParameters, into images: inout Tensor, row: Int) {
        precondition(images.rank == 4 && Array(images.shape.dropFirst()) == shape.dimensions,
                     "Dataset.renderView: tensor shape \(images.shape) is not [N, \(shape.dimensions)]")
        precondition(row >= 0 && row < images.shape[0], "Dataset.renderView: row \(row) out of 0..<\(images.shape[0])")
        precondition(id >= 0 && id < count, "Dataset \(name): sample ID \(id) out of 0..<\(count)")
        let n = shape.pixelCount
        images.withUnsafeMutablePointer { base in
            byteToUnit.withUnsafeBufferPointer { table in
                gather(id: id, view: view) { index, value in
                    base[row * n + index] = value < 0 ? 0 : table[Int(value)]
                }
            }
        }
    }

    /// Adds the view `view` of sample `id` to row `row` of `images` and clamps to [0, 1], in place:
    /// `images[row] = clamp(images[row] + view(x), 0, 1)`, with `view(x)` exactly what `renderView`
    /// writes. A row holding a stored perturbation δ becomes the example `clamp(view(x) + δ, 0, 1)`
    /// (how the trainer rebuilds a memory-bank entry).
    /// - Precondition: as `renderView`.
    public func addView(id: Int, view: ViewParameters, to images: inout Tensor, row: Int) {
        precondition(images.rank == 4 && Array(images.shape.dropFirst()) == shape.dimensions,
                     "Dataset.addView: tensor shape \(images.shape) is not [N, \(shape.dimensions)]")
        precondition(row >= 0 && row < images.shape[0], "Dataset.addView: row \(row) out of 0..<\(images.shape[0])")
        precondition(id >= 0 && id < count, "Dataset \(name): sample ID \(id) out of 0..<\(count)")
        let n = shape.pixelCount
        images.withUnsafeMutablePointer { base in
            byteToUnit.withUnsafeBufferPointer { table in
                gather(id: id, view: view) { index, value in
                    let sum = base[row * n + index] + (value < 0 ? 0 : table[Int(value)])
                    base[row * n + index] = min(max(sum, 0), 1)
                }
            }
        }
    }

    /// Copies image `id` (identity view) as uint8 CHW into `buffer[offset ..< offset + pixelCount]`.
    public func copyImage(at id: Int, into buffer: inout [UInt8], offset: Int = 0) {
        precondition(id >= 0 && id < count, "Dataset \(name): sample ID \(id) out of 0..<\(count)")
        precondition(offset >= 0 && offset + shape.pixelCount <= buffer.count, "Dataset.copyImage: buffer too small")
        let (file, start) = layout.locate(id)
        if layout.isPackedCHW(shape) {
            file.withBytes(at: start, length: shape.pixelCount) { src in
                buffer.withUnsafeMutableBytes { dst in
                    dst.baseAddress!.advanced(by: offset).copyMemory(from: src.baseAddress!, byteCount: src.count)
                }
            }
            return
        }
        buffer.withUnsafeMutableBufferPointer { dst in
            gather(id: id, view: .identity) { index, value in dst[offset + index] = UInt8(value) }
        }
    }

    /// Calls `emit(index, value)` for every output pixel of the view in CHW order, with `value` the
    /// source byte (0…255) or −1 for a pixel in the zero padding.
    @inline(__always)
    private func gather(id: Int, view: ViewParameters, _ emit: (Int, Int) -> Void) {
        let c = shape.channels, h = shape.height, w = shape.width
        let dx = Int(view.dx), dy = Int(view.dy)
        let (file, start) = layout.locate(id)
        let sC = layout.strideC, sH = layout.strideH, sW = layout.strideW
        // Valid output columns: 0 ≤ source column < W.
        //   no flip: sx = x + dx          → x ∈ [−dx, W − dx)
        //   flip:    sx = W − 1 − x + dx  → x ∈ [dx, W + dx)
        let x0 = max(0, view.flip ? dx : -dx)
        let x1 = min(w, view.flip ? w + dx : w - dx)
        file.withBytes(at: 0, length: file.count) { raw in
            let src = raw.bindMemory(to: UInt8.self)
            var index = 0
            for ch in 0..<c {
                for y in 0..<h {
                    let sy = y + dy
                    if sy < 0 || sy >= h || x0 >= x1 {
                        for _ in 0..<w { emit(index, -1); index += 1 }
                        continue
                    }
                    let rowBase = start + ch * sC + sy * sH
                    for _ in 0..<x0 { emit(index, -1); index += 1 }
                    if view.flip {
                        // sx runs downwards from W − 1 − x0 + dx.
                        var p = rowBase + (w - 1 - x0 + dx) * sW
                        for _ in x0..<x1 { emit(index, Int(src[p])); index += 1; p -= sW }
                    } else {
                        var p = rowBase + (x0 + dx) * sW
                        for _ in x0..<x1 { emit(index, Int(src[p])); index += 1; p += sW }
                    }
                    for _ in x1..<w { emit(index, -1); index += 1 }
                }
            }
        }
    }

    // MARK: - Float pixels → bytes

    /// Elements quantized per chunk: bounds the RAM of a conversion (1 MiB of bytes out).
    static let quantizeChunkElements = 1 << 20

    /// Streams `count` little-endian float32 (`width` 4) or float64 (`width` 8) values stored from
    /// `offset` in `f` into `out` as bytes:
    /// ```
    /// byte = round(255 · x)   (in Double, ties to even),   x ∈ [0, 1]
    /// ```
    /// so `Float(byte) / 255` is within 1/510 of x, and a float export of uint8 data (`b / 255` in
    /// float32 or float64) gives back exactly b.
    ///
    /// - Returns: nil when every value is in [0, 1], else the index of the first value that is not
    ///   (NaN included) and that value; the bytes written so far are then incomplete.
    static func quantizeUnitFloats(_ f: MappedFile, offset: Int, count: Int, width: Int,
                                   into out: AtomicFileWriter) throws -> (index: Int, value: Double)? {
        precondition(width == 4 || width == 8, "quantizeUnitFloats: width \(width)")
        var bytes = [UInt8](repeating: 0, count: min(count, quantizeChunkElements))
        var done = 0
        while done < count {
            let n = min(quantizeChunkElements, count - done)
            let bad: (index: Int, value: Double)? = f.withBytes(at: offset + done * width, length: n * width) { raw in
                bytes.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<n {
                        let x: Double = width == 4
                            ? Double(Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))
                            : Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                        // `!(x ≥ 0 && x ≤ 1)` also catches NaN.
                        guard x >= 0 && x <= 1 else { return (done + i, x) }
                        dst[i] = UInt8((255 * x).rounded(.toNearestOrEven))
                    }
                    return nil
                }
            }
            if let bad { return bad }
            try out.append(bytes, count: n)
            done += n
        }
        return nil
    }
}
