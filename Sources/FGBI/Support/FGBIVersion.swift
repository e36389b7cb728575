/// The FGBI release.
package enum FGBIVersion {
    /// The version string `fgbi --version` prints.
    public static let current = "0.1.0"
}
