// MethodTests.swift: the training methods' contracts: TRADES with β = 0 is standard training; the
// TRADES, MART and HAT losses and parameter gradients match an independent Double computation on a
// tiny affine model (and finite differences on a real network for TRADES); auxiliary losses add
// exactly their gradient; each method updates BatchNorm statistics the documented number of times;
// configurations build, validate and round-trip through JSON.

import Attacks
import Foundation
import Kernels
import Layers
import Models
import Tensors
import Training
import XCTest
import _TestSupport

final class MethodTests: XCTestCase {
    // MARK: - TRADES reduces to standard training

    func test_trades_withBetaZero_equalsStandardTraining_lossAndParameterGradients() {
        let cnn = MethodFixtures.smallCNN()  // dropout 0.5 active in training mode
        let model = AnyClassifier(cnn)
        let x = MethodFixtures.images(n: 8, shape: [1, 28, 28], seed: 1), y = MethodFixtures.labels(n: 8, seed: 2)
        let dropoutState = cnn.dropout.randomState

        model.zeroGradients()
        var rng = SplitMix64(seed: 3)
        let standard = StandardMethod().step(model: model, images: x, labels: y, auxiliary: [], rng: &rng)
        let standardGradients = MethodFixtures.gradients(model)

        cnn.dropout.randomState = dropoutState  // the clean pass draws the same dropout mask
        model.zeroGradients()
        rng = SplitMix64(seed: 3)
        let trades = TRADESMethod(config: TRADESConfig(attack: MethodFixtures.attack(.tradesGaussian), beta: 0))
            .step(model: model, images: x, labels: y, auxiliary: [], rng: &rng)

        XCTAssertEqual(trades.loss, standard.loss)
        XCTAssertEqual(trades.terms["ce"], standard.terms["ce"])
        XCTAssertGreaterThan(trades.terms["kl"]!, 0, "the attack should still run and move the predictions")
        XCTAssertNotEqual(trades.adversarial, x)
        for (k, g) in MethodFixtures.gradients(model).enumerated() {
            assertClose(g, standardGradients[k], atol: 1e-7, rtol: 1e-6, "parameter \(model.namedParameters[k].name)")
        }
    }

    // MARK: - Hand-computed losses on the affine model

    /// W (3×2, row-major) and b, two clean and two adversarial 2-pixel samples, labels.
    private let theta: [Double] = [1.2, -0.7, -0.4, 1.5, 0.3, 0.2, 0.1, -0.2, 0.05]
    private let cleanX: [Float] = [0.9, 0.2, 0.3, 0.8]
    private let advX: [Float] = [0.4, 0.5, 0.55, 0.45]  // x_h = 2x̃ − x leaves [0, 1] for sample 0 (h = 2)
    private let y: [Int32] = [0, 2]

    private func affine() -> (AnyClassifier, AffineClassifier) {
        let m = AffineClassifier(weight: theta[0..<6].map { Float($0) }, bias: theta[6..<9].map { Float($0) })
        return (AnyClassifier(m), m)
    }

    private func tensors() -> (Tensor, Tensor) {
        (Tensor(shape: [2, 1, 1, 2], values: cleanX), Tensor(shape: [2, 1, 1, 2], values: advX))
    }

    /// The method's analytic parameter gradient, as [W…, b…].
    private func analyticGradient(_ m: AffineClassifier) -> [Float] { m.weight.gradient.scalars + m.bias.gradient.scalars }

    func test_mart_lossAndGradients_matchAHandComputation() {
        let (model, raw) = affine()
        let (x, adv) = tensors()
        let beta: Double = 6
        let method = MARTMethod(config: MARTConfig(beta: Float(beta)))
        let r = method.loss(model: model, clean: x, adversarial: adv, labels: y)
        let xd = cleanX.map(Double.init), ad = advX.map(Double.init), yi = y.map(Int.init)
        let expected = HandComputed.mart(theta, x: xd, adv: ad, y: yi, beta: beta)
        XCTAssertEqual(Double(r.loss), expected, accuracy: 1e-5 * max(1, abs(expected)))
        XCTAssertEqual(r.terms["total"], r.loss)
        XCTAssertEqual(Double(r.terms["bce"]! + Float(beta) * r.terms["kl"]!), expected, accuracy: 1e-5)
        let reference = HandComputed.gradient(theta) { HandComputed.mart($0, x: xd, adv: ad, y: yi, beta: beta) }
        assertClose(analyticGradient(raw), reference.map { Float($0) }, atol: 2e-6, rtol: 1e-4, "MART gradient")

        // The weight's gradient matters here: detaching it gives a measurably different gradient.
        let detachedTheta = HandComputed.gradient(theta) { t in
            let zc = HandComputed.logits(t, xd), za = HandComputed.logits(t, ad)
            let w0 = HandComputed.logits(self.theta, xd).enumerated().map { 1.0000001 - HandComputed.softmax($0.element)[yi[$0.offset]] }
            var l = 0.0
            for i in 0..<2 {
                let pa = HandComputed.softmax(za[i])
                let other = (0..<3).filter { $0 != yi[i] }.max { pa[$0] < pa[$1] }!
                l += HandComputed.crossEntropy(za[i], yi[i]) / 2 - log(1.0001 - pa[other] + 1e-12) / 2
                l += beta * HandComputed.kl(zc[i], za[i], floor: 1e-12) * w0[i] / 2
            }
            return l
        }
        XCTAssertGreaterThan(maxAbsDifference(reference.map { Float($0) }, detachedTheta.map { Float($0) }), 1e-3)
    }

    func test_hat_lossAndGradients_matchAHandComputation() {
        let (model, raw) = affine()
        let (x, adv) = tensors()
        let config = HATConfig(beta: 2.5, gamma: 0.5, h: 2)
        let helperLabels: [Int32] = [1, 0]
        let helper = AnyClassifier(AffineClassifier(weight: [0, 0, 0, 0, 0, 0], bias: [0, 0, 0]))
        let method = HATMethod(config: config, helper: helper)
        let xh = method.helperExample(clean: x, adversarial: adv)
        assertClose(xh.scalars, [-0.1, 0.8, 0.8, 0.1], atol: 1e-6, rtol: 0, "x_h = x + h(x̃ − x), unclipped")
        let r = method.loss(model: model, clean: x, adversarial: adv, helperLabels: helperLabels, labels: y)
        let xd = cleanX.map(Double.init), ad = advX.map(Double.init), yi = y.map(Int.init), hy = helperLabels.map(Int.init)
        let f = { (t: [Double]) in HandComputed.hat(t, x: xd, adv: ad, y: yi, helperY: hy, beta: 2.5, gamma: 0.5, h: 2) }
        XCTAssertEqual(Double(r.loss), f(theta), accuracy: 1e-5 * max(1, abs(f(theta))))
        XCTAssertEqual(Set(r.terms.keys), ["ce", "kl", "helper_ce", "total"])
        XCTAssertEqual(r.terms["ce"]! + 2.5 * r.terms["kl"]! + 0.5 * r.terms["helper_ce"]!, r.loss, accuracy: 1e-5)
        assertClose(analyticGradient(raw), HandComputed.gradient(theta, f).map { Float($0) }, atol: 2e-6, rtol: 1e-4,
                    "HAT gradient")
        XCTAssertEqual(raw.trainingPasses.value, 3)
    }

    func test_trades_lossAndGradients_matchAHandComputation() {
        let (model, raw) = affine()
        let (x, adv) = tensors()
        let r = TRADESMethod(config: TRADESConfig(beta: 6)).loss(model: model, clean: x, adversarial: adv, labels: y)
        let xd = cleanX.map(Double.init), ad = advX.map(Double.init), yi = y.map(Int.init)
        let f = { (t: [Double]) in HandComputed.trades(t, x: xd, adv: ad, y: yi, beta: 6) }
        XCTAssertEqual(Double(r.loss), f(theta), accuracy: 1e-5 * max(1, abs(f(theta))))
        // The gradient flows through both KL arguments: the reference differentiates the clean softmax too.
        assertClose(analyticGradient(raw), HandComputed.gradient(theta, f).map { Float($0) }, atol: 2e-6, rtol: 1e-4,
                    "TRADES gradient")
    }

    // MARK: - Finite differences on a real network

    func test_trades_parameterGradients_matchFiniteDifferences_forAFixedAdversarialBatch() {
        let cnn = MethodFixtures.smallCNN(dropout: 0)  // no dropout: every evaluation is the same function
        let model = AnyClassifier(cnn)
        let x = MethodFixtures.images(n: 4, shape: [1, 28, 28], seed: 5), labels = MethodFixtures.labels(n: 4, seed: 6)
        var rng = SplitMix64(seed: 7)
        let adv = TRADESAttack.attack(model, images: x, config: MethodFixtures.attack(.tradesGaussian, steps: 3), rng: &rng)
        let method = TRADESMethod(config: TRADESConfig(beta: 6))
        model.zeroGradients()
        let r = method.loss(model: model, clean: x, adversarial: adv, labels: labels)
        XCTAssertGreaterThan(r.terms["kl"]!, 1e-3)
        // Capture every analytic gradient first: each loss evaluation below accumulates more.
        let analytics = model.namedParameters.map { $0.parameter.gradient.scalars }
        for (k, (name, p)) in model.namedParameters.enumerated()
        // (Conv biases are left out: one shifts a whole channel, so a ±ε step crosses many ReLU and
        // max-pool kinks that are each too small for the kink detector.)
        where ["conv1.weight", "conv3.weight", "fc1.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
            .contains(where: { name.hasSuffix($0) }) {
            let analytic = analytics[k]
            _ = checkGradient(name, count: p.value.count, analytic: analytic, read: { p.value[flat: $0] },
                              write: { p.value[flat: $0] = $1 },
                              loss: { Double(method.loss(model: model, clean: x, adversarial: adv, labels: labels).loss) },
                              samples: 10, eps: 5e-3)
        }
    }

    // MARK: - Auxiliary losses

    private func allMethods(helper: AnyClassifier) -> [(String, any TrainingMethod)] {
        [("standard", StandardMethod()),
         ("pgd-at", PGDATMethod(config: PGDATConfig(attack: MethodFixtures.attack(.uniform)))),
         ("trades", TRADESMethod(config: TRADESConfig(attack: MethodFixtures.attack(.tradesGaussian), beta: 6))),
         ("mart", MARTMethod(config: MARTConfig(attack: MethodFixtures.attack(.tradesGaussian), beta: 6))),
         ("hat", HATMethod(config: HATConfig(attack: MethodFixtures.attack(.tradesGaussian)), helper: helper))]
    }

    func test_auxiliaryLosses_addExactlyTheirGradientAndTerms_forEveryMethod() {
        let model = AnyClassifier(MethodFixtures.smallCNN(dropout: 0))
        let helper = AnyClassifier(MethodFixtures.smallCNN(seed: 9))
        let x = MethodFixtures.images(n: 4, shape: [1, 28, 28], seed: 10), labels = MethodFixtures.labels(n: 4, seed: 11)
        var g = SplitMix64(seed: 12)
        let d = Tensor.randomNormal(shape: [4, 10], std: 0.3, rng: &g)
        for (name, method) in allMethods(helper: helper) {
            func run(_ aux: [any AuxiliaryLoss]) -> (MethodStepResult, [[Float]]) {
                model.zeroGradients()
                var rng = SplitMix64(seed: 13)
                let r = method.step(model: model, images: x, labels: labels, auxiliary: aux, rng: &rng)
                return (r, MethodFixtures.gradients(model))
            }
            let (plain, g0) = run([])
            let zero = RecordingAuxiliary(terms: ["zero": 0]) { Tensor(zeros: $0.shape) }
            let (withZero, gz) = run([zero])
            XCTAssertEqual(gz, g0, "\(name): a zero-gradient auxiliary changed the gradients")
            XCTAssertEqual(withZero.loss, plain.loss, "\(name)")
            XCTAssertEqual(withZero.terms["zero"], 0, "\(name)")

            let known = RecordingAuxiliary(terms: ["mem": 0.25]) { _ in d }
            let (withKnown, gk) = run([known, zero])
            XCTAssertEqual(withKnown.loss, plain.loss + 0.25, accuracy: 1e-6, "\(name)")
            XCTAssertEqual(known.receivedLogits, withKnown.cleanLogits, "\(name): auxiliary saw other logits than reported")
            // Its contribution alone: backward of d through a training-mode clean pass.
            model.zeroGradients()
            let (_, cache) = model.forward(x, mode: .training)
            _ = model.backward(d, cache: cache, targets: .parameters)
            let contribution = MethodFixtures.gradients(model)
            for k in 0..<g0.count {
                let expected = zip(g0[k], contribution[k]).map { $0 + $1 }
                assertClose(gk[k], expected, atol: 1e-6, rtol: 1e-5, "\(name): \(model.namedParameters[k].name)")
            }
        }
    }

    // MARK: - BatchNorm passes

    func test_batchNormRunningStatistics_areUpdatedByTheDocumentedNumberOfTrainingPasses() {
        let model = AnyClassifier(ResNet18(classes: 10, width: 0.0625, seed: 14))
        let helper = AnyClassifier(ResNet18(classes: 10, width: 0.0625, seed: 15))
        let x = MethodFixtures.images(n: 3, shape: [3, 32, 32], seed: 16), labels = MethodFixtures.labels(n: 3, seed: 17)
        let zeroAux = RecordingAuxiliary(terms: [:]) { Tensor(zeros: $0.shape) }
        let expected: [String: Int64] = ["standard": 1, "pgd-at": 1, "trades": 2, "mart": 2, "hat": 3]
        let helperBefore = MethodFixtures.counters(helper)
        helper.zeroGradients()
        for (name, method) in allMethods(helper: helper) {
            for aux in [[], [zeroAux]] as [[any AuxiliaryLoss]] {
                let before = MethodFixtures.counters(model)
                var rng = SplitMix64(seed: 18)
                let r = method.step(model: model, images: x, labels: labels, auxiliary: aux, rng: &rng)
                XCTAssert(r.loss.isFinite, "\(name)")
                // PGD-AT documents one extra training-mode clean pass when auxiliaries need clean logits.
                let passes = expected[name]! + (name == "pgd-at" && !aux.isEmpty ? 1 : 0)
                let after = MethodFixtures.counters(model)
                XCTAssertFalse(before.isEmpty)
                XCTAssertEqual(zip(after, before).map { $0 - $1 }, before.map { _ in passes },
                               "\(name) with \(aux.count) auxiliaries")
            }
        }
        XCTAssertEqual(MethodFixtures.counters(helper), helperBefore, "the HAT helper must stay frozen")
        XCTAssert(helper.parameters.allSatisfy { $0.gradient.scalars.allSatisfy { $0 == 0 } }, "the helper got gradients")
    }

    // MARK: - Step results

    func test_everyMethod_reportsItsTerms_andTheAdversarialBatch() {
        let model = AnyClassifier(MethodFixtures.smallCNN())
        let helper = AnyClassifier(MethodFixtures.smallCNN(seed: 19))
        let x = MethodFixtures.images(n: 4, shape: [1, 28, 28], seed: 20), labels = MethodFixtures.labels(n: 4, seed: 21)
        let terms: [String: Set<String>] = ["standard": ["ce", "total"], "pgd-at": ["adv_ce", "total"],
                                            "trades": ["ce", "kl", "total"], "mart": ["bce", "kl", "total"],
                                            "hat": ["ce", "kl", "helper_ce", "total"]]
        for (name, method) in allMethods(helper: helper) {
            var rng = SplitMix64(seed: 22)
            let r = method.step(model: model, images: x, labels: labels, auxiliary: [], rng: &rng)
            XCTAssertEqual(Set(r.terms.keys), terms[name]!, name)
            XCTAssertEqual(r.terms["total"], r.loss, name)
            XCTAssert(r.loss.isFinite && r.loss > 0, name)
            XCTAssertEqual(r.cleanLogits.shape, [4, 10], name)
            if name == "standard" {
                XCTAssertNil(r.adversarial)
            } else {
                let adv = try! XCTUnwrap(r.adversarial)
                XCTAssertEqual(r.adversarialLogits?.shape, [4, 10], name)
                XCTAssert(adv.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, name)
                XCTAssertLessThanOrEqual(maxAbsDifference(adv.scalars, x.scalars), 0.1 + 1e-6, name)
            }
        }
    }

    // MARK: - Configurations

    func test_makeMethod_buildsEachMethod_andRejectsBadConfigurations() throws {
        let helper = AnyClassifier(MethodFixtures.smallCNN())
        XCTAssert(try makeMethod(.standard(StandardConfig()), helper: nil) is StandardMethod)
        XCTAssert(try makeMethod(.pgdAT(PGDATConfig()), helper: nil) is PGDATMethod)
        XCTAssert(try makeMethod(.trades(TRADESConfig()), helper: nil) is TRADESMethod)
        XCTAssert(try makeMethod(.mart(MARTConfig()), helper: nil) is MARTMethod)
        XCTAssert(try makeMethod(.hat(HATConfig()), helper: helper) is HATMethod)
        XCTAssertThrowsError(try makeMethod(.hat(HATConfig()), helper: nil)) { e in
            XCTAssertEqual(e as? MethodError, .missingHelper)
            XCTAssert("\(e)".contains("hint:"))
        }
        XCTAssertThrowsError(try makeMethod(.trades(TRADESConfig(beta: -1)), helper: nil)) { e in
            XCTAssert("\(e)".contains("β"), "\(e)")
        }
        var bad = PGDConfig.madryCIFAR
        bad.steps = -1
        XCTAssertThrowsError(try makeMethod(.pgdAT(PGDATConfig(attack: bad)), helper: nil))
        XCTAssertThrowsError(try makeMethod(.hat(HATConfig(gamma: .nan)), helper: helper))
    }

    func test_configDefaults_matchTheReferences() {
        XCTAssertEqual(TRADESConfig().beta, 6)
        XCTAssertEqual(TRADESConfig().attack, .tradesTrainCIFAR)
        XCTAssertEqual(MARTConfig().beta, 6)
        XCTAssertEqual(MARTConfig().attack.randomStart, .gaussian(std: 0.001))
        XCTAssertEqual(PGDATConfig().attack, .madryCIFAR)
        let hat = HATConfig()
        XCTAssertEqual([hat.beta, hat.gamma, hat.h], [2.5, 0.5, 2.0])
        XCTAssertEqual(hat.attack.epsilon, 8 / 255)
    }

    func test_methodConfig_jsonRoundTrips_andFillsAbsentFieldsWithDefaults() throws {
        let configs: [MethodConfig] = [.standard(StandardConfig()), .pgdAT(PGDATConfig()), .trades(TRADESConfig(beta: 3)),
                                       .mart(MARTConfig()), .hat(HATConfig(gamma: 1))]
        for c in configs {
            let data = try JSONEncoder().encode(c)
            XCTAssertEqual(try JSONDecoder().decode(MethodConfig.self, from: data), c, String(decoding: data, as: UTF8.self))
        }
        let partial = try JSONDecoder().decode(MethodConfig.self, from: Data(#"{"method": "trades", "beta": 1}"#.utf8))
        XCTAssertEqual(partial, .trades(TRADESConfig(attack: .tradesTrainCIFAR, beta: 1)))
        XCTAssertThrowsError(try JSONDecoder().decode(MethodConfig.self, from: Data(#"{"method": "fancy"}"#.utf8))) { e in
            XCTAssert("\(e)".contains("trades"), "\(e)")
        }
    }

    func test_methodConfig_namesAccessorsAndDefaultsByName() {
        for name in MethodConfig.names { XCTAssertEqual(MethodConfig.defaultConfig(named: name)?.name, name) }
        XCTAssertNil(MethodConfig.defaultConfig(named: "bogus"))
        // A given attack keeps its numbers but takes the method's own random start.
        let pgdAT = MethodConfig.defaultConfig(named: "pgd-at", attack: .tradesTrainCIFAR)!
        XCTAssertEqual(pgdAT.attack?.epsilon, 0.031)
        XCTAssertEqual(pgdAT.attack?.randomStart, .uniform)
        let trades = MethodConfig.defaultConfig(named: "trades", attack: .madryCIFAR)!
        XCTAssertEqual(trades.attack?.randomStart, .tradesGaussian)
        var c = MethodConfig.trades(TRADESConfig())
        c.beta = 2
        c.attack?.steps = 3
        XCTAssertEqual(c, .trades(TRADESConfig(attack: PGDConfig(epsilon: 0.031, stepSize: 0.007, steps: 3,
                                                                 randomStart: .tradesGaussian), beta: 2)))
        var s = MethodConfig.standard(StandardConfig())
        s.beta = 3
        s.attack?.steps = 3
        XCTAssertEqual(s, .standard(StandardConfig()))
        XCTAssertNil(s.attack)
    }
}
