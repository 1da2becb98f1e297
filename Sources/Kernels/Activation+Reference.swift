// Activation+Reference.swift: naive twins of the Activation kernels (plain scalar loops). Tests only.

extension Reference {
    /// Twin of `Activation.reluForward`: `output[i] = input[i] > 0 ? input[i] : 0` (NaN passes through).
    public static func reluForward(output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, count: Int) {
        for i in 0..<max(count, 0) {
            let x = input[i]
            output[i] = x < 0 ? 0 : x
        }
    }

    /// Twin of `Activation.reluBackward`: `dInput[i] = input[i] > 0 ? dOutput[i] : 0`.
    public static func reluBackward(dInput: UnsafeMutablePointer<Float>, dOutput: UnsafePointer<Float>,
                                    input: UnsafePointer<Float>, count: Int) {
        for i in 0..<max(count, 0) { dInput[i] = input[i] > 0 ? dOutput[i] : 0 }
    }
}
