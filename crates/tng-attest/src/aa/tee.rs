//! TEE type names as the Attestation Agent reports them (kbs-types serde names).

/// Every name some kbs-types version (CoCo's or the openanolis fork) uses.
const KNOWN_TEES: [&str; 20] = [
    "sample",
    "sampledevice",
    "tdx",
    "sgx",
    "snp",
    "sev",
    "csv",
    "cca",
    "se",
    "tpm",
    "system",
    "hygondcu",
    "hygontpm",
    "nvidia",
    "az-snp-vtpm",
    "az-tdx-vtpm",
    "azsnpvtpm",
    "aztdxvtpm",
    "snp-vtpm",
    "tdx-vtpm",
];

/// Parses a `GetTeeType` answer (`sample`, possibly quoted or padded) into a known name.
pub fn parse_tee(reported: &str) -> Option<String> {
    let name = reported.trim().trim_matches('"').trim();
    KNOWN_TEES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map(|known| (*known).to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_tee;

    #[test]
    fn tee_names() {
        assert_eq!(parse_tee("sample").as_deref(), Some("sample"));
        assert_eq!(parse_tee(" \"tdx\"\n").as_deref(), Some("tdx"));
        assert_eq!(parse_tee("az-snp-vtpm").as_deref(), Some("az-snp-vtpm"));
        assert_eq!(parse_tee("quantum"), None);
        assert_eq!(parse_tee(""), None);
    }
}
