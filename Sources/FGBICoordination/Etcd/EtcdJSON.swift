import Foundation

/// The JSON of etcd's gateway, both ways. Requests are built as dictionaries of strings (keys and values in
/// base64, int64 fields as decimal strings, as the gateway's protobuf JSON mapping expects). Responses are
/// read with ``Object``, which checks each field it is asked for: protobuf JSON omits fields at their zero
/// value, so an absent number is 0 and an absent bool false, but a field of the wrong type is an error.
enum EtcdJSON {
    /// A problem with a response, turned into ``EtcdError/Reason/malformedResponse(_:)`` by the client.
    struct Malformed: Error {
        let detail: String
    }

    /// Serialises a request body.
    static func encode(_ object: [String: Any]) -> Data {
        // Only strings, bools, arrays and dictionaries go in, all valid JSON.
        (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
    }

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// Parses a response body that must be a JSON object.
    static func parse(_ data: Data) throws(Malformed) -> Object {
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw Malformed(detail: "not JSON: \(excerpt(data))")
        }
        guard let dictionary = value as? [String: Any] else {
            throw Malformed(detail: "not a JSON object: \(excerpt(data))")
        }
        return Object(dictionary, path: "")
    }

    /// The start of a body, printable, for error messages.
    static func excerpt(_ data: Data, limit: Int = 80) -> String {
        if data.isEmpty { return "empty body" }
        let text = String(decoding: data.prefix(limit), as: UTF8.self)
        let printable = String(
            text.unicodeScalars.map {
                $0.properties.isWhitespace ? " " : ($0.value < 0x20 || $0.value == 0xFFFD ? "." : Character($0))
            })
        return "'\(printable)\(data.count > limit ? "..." : "")'"
    }

    /// A JSON object from a response, whose fields are read with their path for error messages.
    struct Object {
        private let fields: [String: Any]
        /// Where this object sits in the response, such as "kvs[0]", for error messages.
        let path: String

        init(_ fields: [String: Any], path: String) {
            self.fields = fields
            self.path = path
        }

        private func name(_ field: String) -> String { path.isEmpty ? field : "\(path).\(field)" }

        /// A field's value as text, cut short, for error messages.
        private func shown(_ field: String) -> String {
            let text = String(describing: fields[field] ?? "nothing")
            return text.count > 40 ? String(text.prefix(40)) + "..." : text
        }

        func has(_ field: String) -> Bool { fields[field] != nil && !(fields[field] is NSNull) }

        /// An int64 field: a decimal string in protobuf JSON (a plain number is accepted too); 0 when absent.
        func int64(_ field: String) throws(Malformed) -> Int64 {
            guard has(field) else { return 0 }
            if let text = fields[field] as? String, let value = Int64(text) { return value }
            if let value = fields[field] as? Int64 { return value }
            throw Malformed(detail: "field '\(name(field))' is not an integer: \(shown(field))")
        }

        /// A uint64 field (member IDs), like ``int64(_:)``.
        func uint64(_ field: String) throws(Malformed) -> UInt64 {
            guard has(field) else { return 0 }
            if let text = fields[field] as? String, let value = UInt64(text) { return value }
            if let value = fields[field] as? UInt64 { return value }
            throw Malformed(detail: "field '\(name(field))' is not an unsigned integer: \(shown(field))")
        }

        /// An int64 field that must be present (such as a lease's ID).
        func requiredInt64(_ field: String) throws(Malformed) -> Int64 {
            guard has(field) else { throw Malformed(detail: "field '\(name(field))' is missing") }
            return try int64(field)
        }

        func bool(_ field: String) throws(Malformed) -> Bool {
            guard has(field) else { return false }
            // Foundation bridges the numbers 0 and 1 to Bool as well; harmless leniency.
            guard let value = fields[field] as? Bool else {
                throw Malformed(detail: "field '\(name(field))' is not a boolean: \(shown(field))")
            }
            return value
        }

        func string(_ field: String) throws(Malformed) -> String {
            guard has(field) else { return "" }
            guard let text = fields[field] as? String else {
                throw Malformed(detail: "field '\(name(field))' is not a string")
            }
            return text
        }

        /// A bytes field, base64 in protobuf JSON; empty when absent.
        func bytes(_ field: String) throws(Malformed) -> [UInt8] {
            let text = try string(field)
            guard let data = Data(base64Encoded: text) else {
                throw Malformed(detail: "field '\(name(field))' is not base64")
            }
            return [UInt8](data)
        }

        /// A nested object, nil when absent.
        func object(_ field: String) throws(Malformed) -> Object? {
            guard has(field) else { return nil }
            guard let nested = fields[field] as? [String: Any] else {
                throw Malformed(detail: "field '\(name(field))' is not an object")
            }
            return Object(nested, path: name(field))
        }

        /// A nested object that must be present (such as the response header).
        func requiredObject(_ field: String) throws(Malformed) -> Object {
            guard let nested = try object(field) else { throw Malformed(detail: "field '\(name(field))' is missing") }
            return nested
        }

        /// An array of objects; empty when absent.
        func objects(_ field: String) throws(Malformed) -> [Object] {
            guard has(field) else { return [] }
            guard let array = fields[field] as? [Any] else {
                throw Malformed(detail: "field '\(name(field))' is not an array")
            }
            var result: [Object] = []
            for (index, element) in array.enumerated() {
                guard let nested = element as? [String: Any] else {
                    throw Malformed(detail: "'\(name(field))[\(index)]' is not an object")
                }
                result.append(Object(nested, path: "\(name(field))[\(index)]"))
            }
            return result
        }

        /// A response's cluster revision, from its header, which every etcd response carries.
        func headerRevision() throws(Malformed) -> Int64 {
            try requiredObject("header").requiredInt64("revision")
        }

        /// A key-value (`mvccpb.KeyValue`).
        func keyValue() throws(Malformed) -> EtcdKeyValue {
            guard has("key") else { throw Malformed(detail: "field '\(name("key"))' is missing") }
            return EtcdKeyValue(
                key: String(decoding: try bytes("key"), as: UTF8.self), value: try bytes("value"),
                createRevision: try int64("create_revision"), modRevision: try int64("mod_revision"),
                version: try int64("version"), lease: try int64("lease"))
        }
    }
}
