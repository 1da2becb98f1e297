// ViewParametersTests.swift: the shared value types: a view's 4 stored bytes (the bank record's view
// field, docs/format/membank-v1.md) round-trip, with negative offsets in two's complement and the
// reserved byte ignored; the norm enum keeps its JSON spellings "linf" and "l2".

import Foundation
import Tensors
import XCTest

final class ViewParametersTests: XCTestCase {
    func test_bytes_roundTrip_withNegativeOffsets_andTheReservedByteIgnored() {
        let v = ViewParameters(dx: 2, dy: -1, flip: true)
        XCTAssertEqual(v.bytes, [0x02, 0xFF, 0x01, 0x00])
        XCTAssertEqual(ViewParameters(bytes: v.bytes), v)
        XCTAssertEqual(ViewParameters(bytes: [0x02, 0xFF, 0x01, 0x7F]), v, "byte 3 is reserved")
        XCTAssertEqual(ViewParameters(bytes: [0x80, 0x7F, 0x00, 0x00]), ViewParameters(dx: -128, dy: 127, flip: false))
        XCTAssertEqual(ViewParameters(bytes: [UInt8]()), .identity, "short input reads as zero-padded")
        XCTAssertEqual(ViewParameters.identity.bytes, [0, 0, 0, 0])
        XCTAssertTrue(ViewParameters(bytes: [0, 0, 0, 0]).isIdentity)
    }

    func test_norm_keepsItsJSONSpellings() throws {
        XCTAssertEqual(String(decoding: try JSONEncoder().encode([PerturbationNorm.linf, .l2]), as: UTF8.self), #"["linf","l2"]"#)
        XCTAssertEqual(try JSONDecoder().decode([PerturbationNorm].self, from: Data(#"["l2","linf"]"#.utf8)), [.l2, .linf])
        XCTAssertEqual(PerturbationNorm.allCases, [.linf, .l2])
    }
}
