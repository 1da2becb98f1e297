// ModelSpec.swift: the catalogue of architectures as a typed, Codable spec (what the CLI and the
// config files name), and the one place that builds a model from it.

import Layers
import Tensors

/// The architectures memloss provides.
public enum Architecture: String, CaseIterable, Codable, Sendable {
    case smallCNN = "smallcnn"
    case resNet18 = "resnet18"
    case preActResNet18 = "preactresnet18"
    case wideResNet = "wideresnet"
}

/// A model: architecture, class count, width multiplier and (WideResNet) depth and widen factor.
public struct ModelSpec: Codable, Sendable, Hashable, CustomStringConvertible {
    public var architecture: Architecture
    /// Number of output classes.
    public var classes: Int
    /// Multiplies every channel width (1 = the reference network; e.g. 0.25 for a CPU-sized variant).
    public var width: Double
    /// WideResNet depth (6n + 4) and widen factor; ignored by the other architectures.
    public var depth: Int
    public var widen: Int

    public init(_ architecture: Architecture, classes: Int = 10, width: Double = 1, depth: Int = 34, widen: Int = 10) {
        self.architecture = architecture; self.classes = classes; self.width = width
        self.depth = depth; self.widen = widen
    }

    /// Parses `smallcnn`, `resnet18`, `preactresnet18` (or `preact-resnet18`), `wrn-D-K`
    /// (or `wideresnet-D-K`, `wideresnet` = WRN-34-10).
    public init(parsing name: String, classes: Int = 10, width: Double = 1) throws(ModelSpecError) {
        let s = name.lowercased()
        switch s {
        case "smallcnn", "small-cnn": self.init(.smallCNN, classes: classes, width: width)
        case "resnet18", "resnet-18": self.init(.resNet18, classes: classes, width: width)
        case "preactresnet18", "preact-resnet18", "preact-resnet-18": self.init(.preActResNet18, classes: classes, width: width)
        case "wideresnet", "wrn": self.init(.wideResNet, classes: classes, width: width)
        default:
            let parts = s.split(separator: "-")
            if parts.count == 3, parts[0] == "wrn" || parts[0] == "wideresnet",
               let d = Int(parts[1]), let k = Int(parts[2]) {
                guard d >= 10, (d - 4) % 6 == 0 else { throw .badWideResNetDepth(name: name, depth: d) }
                guard k >= 1 else { throw .unknown(name) }
                self.init(.wideResNet, classes: classes, width: width, depth: d, widen: k)
            } else {
                throw .unknown(name)
            }
        }
        guard classes >= 2 else { throw .badClassCount(classes) }
        guard width > 0, width <= 16 else { throw .badWidth(width) }
    }

    /// The canonical short name, e.g. `resnet18`, `wrn-34-10`, with `×0.25` when narrowed.
    public var name: String {
        let base = architecture == .wideResNet ? "wrn-\(depth)-\(widen)" : architecture.rawValue
        return width == 1 ? base : "\(base)×\(width)"
    }

    public var description: String { name }

    /// `[C, H, W]` of the images the model takes.
    public var inputShape: [Int] { architecture == .smallCNN ? [1, 28, 28] : [3, 32, 32] }

    /// Builds the model with the reference initialisation, deterministically from `seed`.
    public func build(seed: UInt64) -> AnyClassifier {
        switch architecture {
        case .smallCNN: return AnyClassifier(SmallCNN(classes: classes, width: width, seed: seed))
        case .resNet18: return AnyClassifier(ResNet18(classes: classes, width: width, seed: seed))
        case .preActResNet18: return AnyClassifier(PreActResNet18(classes: classes, width: width, seed: seed))
        case .wideResNet:
            return AnyClassifier(WideResNet(depth: depth, widen: widen, classes: classes, width: width, seed: seed))
        }
    }

    /// Forward multiply-accumulates per image (convolutions and linear layers).
    public static func forwardMACs(of model: AnyClassifier) -> Int {
        switch model.base {
        case let m as SmallCNN: return m.forwardMACs
        case let m as ResNet18: return m.forwardMACs
        case let m as PreActResNet18: return m.forwardMACs
        case let m as WideResNet: return m.forwardMACs
        default: return 0
        }
    }

    /// The reference configurations listed by `memloss models`.
    public static let catalogue: [ModelSpec] = [
        ModelSpec(.smallCNN), ModelSpec(.resNet18), ModelSpec(.preActResNet18),
        ModelSpec(.wideResNet, depth: 34, widen: 10), ModelSpec(.wideResNet, depth: 28, widen: 10),
    ]
}

/// Why a model name or option was rejected.
public enum ModelSpecError: Error, CustomStringConvertible, Equatable {
    case unknown(String)
    case badWideResNetDepth(name: String, depth: Int)
    case badClassCount(Int)
    case badWidth(Double)

    public var description: String {
        switch self {
        case .unknown(let n):
            return "unknown model '\(n)'; expected one of smallcnn, resnet18, preactresnet18, wrn-DEPTH-WIDEN\n"
                + "hint: run `memloss models` for the list"
        case .badWideResNetDepth(let n, let d):
            return "model '\(n)': WideResNet depth \(d) must be 6n + 4 (e.g. 16, 28, 34)\nhint: try wrn-34-10 or wrn-16-4"
        case .badClassCount(let c):
            return "class count \(c) is invalid; expected at least 2\nhint: the class count comes from the dataset's labels (memloss eval also takes --classes N); check them with `memloss data info SPEC`"
        case .badWidth(let w):
            return "width multiplier \(w) is invalid; expected a value in (0, 16]\nhint: 1 is the reference width"
        }
    }
}
