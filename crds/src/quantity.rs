//! Parsing of Kubernetes memory quantities (`512Mi`, `2Gi`, `1.5G`, `1073741824`) into bytes.
//!
//! The executor's `--memory` flag takes plain bytes while users write quantities; this is the one
//! place that converts. Only the suffixes that make sense for memory are accepted (no `m`).

use thiserror::Error;

/// A memory quantity that could not be turned into bytes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QuantityError {
    /// The text is not `<number>[suffix]`.
    #[error("`{0}` is not a memory quantity like 512Mi, 2Gi or 1000000000")]
    Malformed(String),
    /// The suffix is not one of Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E.
    #[error("`{0}` has an unknown suffix; use Ki, Mi, Gi, Ti (binary) or k, M, G, T (decimal)")]
    UnknownSuffix(String),
    /// The value does not fit in 63 bits of bytes.
    #[error("`{0}` is too large")]
    TooLarge(String),
}

/// Regular expression the CRD schema uses for memory fields (kept equal to [`parse_bytes`]).
pub const MEMORY_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$";

/// Parses a memory quantity into bytes, rounding fractional bytes up.
///
/// # Errors
/// [`QuantityError`] when the text is malformed, has an unknown suffix or overflows.
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, suffix) = t.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        _ => return Err(QuantityError::UnknownSuffix(text.to_string())),
    };
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    let well_formed = !int_part.is_empty()
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && frac_part.bytes().all(|b| b.is_ascii_digit())
        && !(number.contains('.') && frac_part.is_empty());
    if !well_formed {
        return Err(QuantityError::Malformed(text.to_string()));
    }
    let too_large = || QuantityError::TooLarge(text.to_string());
    let int: u64 = int_part.parse().map_err(|_| too_large())?;
    let mut bytes = int.checked_mul(multiplier).ok_or_else(too_large)?;
    if !frac_part.is_empty() {
        // Exact integer arithmetic: frac * multiplier / 10^len, rounded up.
        let digits = frac_part.len().min(18) as u32;
        let frac: u128 = frac_part[..digits as usize]
            .parse()
            .map_err(|_| too_large())?;
        let scale = 10u128.pow(digits);
        let extra = (frac * u128::from(multiplier)).div_ceil(scale);
        bytes = bytes
            .checked_add(u64::try_from(extra).map_err(|_| too_large())?)
            .ok_or_else(too_large)?;
    }
    if bytes > i64::MAX as u64 {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Formats bytes as the largest exact binary quantity (`2Gi`, `1536Mi`, `1000`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    for (suffix, shift) in UNITS {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes_parse_to_bytes() {
        assert_eq!(parse_bytes("512Mi"), Ok(512 << 20));
        assert_eq!(parse_bytes("2Gi"), Ok(2 << 30));
        assert_eq!(parse_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_bytes("1073741824"), Ok(1 << 30));
        assert_eq!(parse_bytes("0.5k"), Ok(500));
    }

    #[test]
    fn malformed_quantities_are_refused() {
        assert!(matches!(parse_bytes(""), Err(QuantityError::Malformed(_))));
        assert!(matches!(
            parse_bytes("Gi"),
            Err(QuantityError::Malformed(_))
        ));
        assert!(matches!(
            parse_bytes("1."),
            Err(QuantityError::Malformed(_))
        ));
        assert!(matches!(
            parse_bytes("100m"),
            Err(QuantityError::UnknownSuffix(_))
        ));
        assert!(matches!(
            parse_bytes("2gb"),
            Err(QuantityError::UnknownSuffix(_))
        ));
        assert!(matches!(
            parse_bytes("99999Ei"),
            Err(QuantityError::TooLarge(_))
        ));
    }

    #[test]
    fn formatting_picks_the_largest_exact_unit() {
        assert_eq!(format_bytes(2 << 30), "2Gi");
        assert_eq!(format_bytes(1536 << 20), "1536Mi");
        assert_eq!(format_bytes(1000), "1000");
    }
}
