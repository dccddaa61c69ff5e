//! Byte quantities (`512Mi`, `2Gi`, `1.5G`, `1e9`, `1073741824`): the one parser behind
//! `--memory`, byte-valued `--set` keys and the CRD's memory fields.
//!
//! Hand-written on purpose: the kept crate for Kubernetes quantities (`kube_quantity` 0.9)
//! parses the grammar but its integer conversions truncate the mantissa before scaling (`1.5Gi`
//! becomes 1 GiB) and overflow on large values. This parser does exact integer arithmetic on the
//! same grammar (decimal and binary SI suffixes, a decimal exponent, fractions); a property test
//! checks it against `kube_quantity`'s floating-point conversion. Fractional bytes round up;
//! negative values, the milli suffix `m` and values past `i64::MAX` (what Kubernetes can
//! represent) are refused.

/// Regular expression the CRD schema uses for memory fields; every string it admits parses here
/// (a test checks a table of both).
pub const MEMORY_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$";

/// A text that is not a byte quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not `<number>[suffix]`.
    #[error("`{0}` is not a byte quantity (e.g. 512Mi, 2Gi, 1.5G, 1073741824)")]
    Malformed(String),
    /// A suffix that is not a binary (Ki…Ei) or decimal (k…E) SI suffix or an exponent.
    #[error(
        "`{0}` has an unknown suffix; use Ki, Mi, Gi, Ti, Pi, Ei (binary), k, M, G, T, P, E (decimal) or an exponent (1e9)"
    )]
    UnknownSuffix(String),
    /// More bytes than Kubernetes can represent.
    #[error("`{0}` is too large (at most 2^63-1 bytes)")]
    TooLarge(String),
}

/// Parses a byte quantity, rounding a fractional byte count up.
///
/// # Errors
/// [`QuantityError`] naming the text.
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let malformed = || QuantityError::Malformed(text.to_string());
    let too_large = || QuantityError::TooLarge(text.to_string());
    // value = number × base^power (binary suffixes) or number × 10^power (decimal, exponent).
    let (binary, power): (bool, u32) = match suffix {
        "" => (false, 0),
        "k" => (false, 3),
        "M" => (false, 6),
        "G" => (false, 9),
        "T" => (false, 12),
        "P" => (false, 15),
        "E" => (false, 18),
        "Ki" => (true, 10),
        "Mi" => (true, 20),
        "Gi" => (true, 30),
        "Ti" => (true, 40),
        "Pi" => (true, 50),
        "Ei" => (true, 60),
        s if s.starts_with(['e', 'E'])
            && s.len() > 1
            && s[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            (false, s[1..].parse().map_err(|_| too_large())?)
        }
        _ if number.is_empty() => return Err(malformed()),
        _ => return Err(QuantityError::UnknownSuffix(text.to_string())),
    };
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    // Digits before the point, and after it when there is one (a second point lands in the
    // fraction).
    let has_point = number.contains('.');
    let malformed_number =
        int_part.is_empty() || (has_point && frac_part.is_empty()) || frac_part.contains('.');
    if malformed_number {
        return Err(malformed());
    }
    // Exact: digits / 10^frac_len × multiplier, in u128, rounded up. 38 digits fit in u128;
    // anything longer is either too large or has fraction digits below a byte's resolution.
    let frac_part = &frac_part[..frac_part.len().min(20)];
    let digits: u128 = format!("{int_part}{frac_part}")
        .trim_start_matches('0')
        .parse()
        .or_else(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::Empty => Ok(0),
            _ => Err(too_large()),
        })?;
    let denominator = 10u128.pow(frac_part.len() as u32);
    let multiplier: u128 = if binary {
        1u128 << power
    } else {
        10u128.checked_pow(power).ok_or_else(too_large)?
    };
    let bytes = digits
        .checked_mul(multiplier)
        .ok_or_else(too_large)?
        .div_ceil(denominator);
    u64::try_from(bytes)
        .ok()
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(too_large)
}

/// Formats bytes the way users write them: the largest binary unit that divides exactly
/// (`1Gi`, `512Mi`), else plain bytes.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 6] = [
        ("Ei", 1 << 60),
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (suffix, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{suffix}", bytes / size);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_quantities_become_bytes() {
        for (text, bytes) in [
            ("1073741824", 1 << 30),
            ("2Gi", 2 << 30),
            ("512Mi", 512 << 20),
            ("1.5Gi", 3 << 29),
            ("1G", 1_000_000_000),
            ("1.5G", 1_500_000_000),
            ("64k", 64_000),
            ("1e3", 1_000),
            ("0.5Ki", 512),
            ("1.0001", 2),
            ("1Ei", 1 << 60),
            ("1.1k", 1_100),
            ("0.1Ki", 103),
            ("2E3", 2_000),
            ("007", 7),
            ("0", 0),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_quantities_name_the_text() {
        for text in [
            "lots", "", "5Xi", "512m", "-1Gi", "+1", "1.2.3", "8Ei", "1e30", ".5", "1.", "1Gi ",
        ] {
            match parse_bytes(text) {
                Err(e) => assert!(e.to_string().contains(text.trim()), "{text}: {e}"),
                Ok(b) if text == "1Gi " => assert_eq!(b, 1 << 30),
                Ok(b) => panic!("`{text}` parsed as {b}"),
            }
        }
    }

    #[test]
    fn the_crd_pattern_admits_only_parseable_quantities() {
        let re = |s: &str| {
            // The pattern is simple enough to check by hand-rolled matching of its parts.
            let digits_end = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            let (num, suffix) = s.split_at(digits_end);
            let num_ok = !num.is_empty()
                && !num.starts_with('.')
                && num.matches('.').count() <= 1
                && !num.ends_with('.');
            let suffixes = [
                "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
            ];
            num_ok && suffixes.contains(&suffix)
        };
        assert!(MEMORY_PATTERN.contains("Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E"));
        for s in ["1", "2Gi", "1.5G", "512Mi", "7E", "3Pi", "10k"] {
            assert!(re(s), "{s}");
            assert!(parse_bytes(s).is_ok(), "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_kube_quantity(int in 0u64..100_000, frac in 0u32..1000, suffix in proptest::sample::select(vec!["", "k", "M", "G", "Ki", "Mi", "Gi", "Ti"])) {
            let text = format!("{int}.{frac:03}{suffix}");
            let exact = parse_bytes(&text).unwrap() as f64;
            let q = kube_quantity::ParsedQuantity::try_from(text.as_str()).unwrap();
            let float = q.to_bytes_f64().unwrap();
            proptest::prop_assert!(exact >= float - 1e-6 * float.max(1.0) && exact <= float.ceil() + 1.0 + 1e-9 * float, "{} -> {} vs {}", text, exact, float);
        }
    }

    #[test]
    fn bytes_format_in_the_largest_exact_unit() {
        assert_eq!(format_bytes(1 << 30), "1Gi");
        assert_eq!(format_bytes(3 << 29), "1536Mi");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_bytes(0), "0");
    }
}
