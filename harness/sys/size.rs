//! Sizes as people write them in settings (`2G`, `512M`, `1000`) and as pglab says them.

/// Bytes of `text`: a number with an optional K, M or G suffix (powers of 1024).
pub fn parse(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.chars().last()? {
        'k' | 'K' => (&t[..t.len() - 1], 1u64 << 10),
        'm' | 'M' => (&t[..t.len() - 1], 1 << 20),
        'g' | 'G' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// "2 GiB", "768 MiB".
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(parse("2G"), Some(2 << 30));
        assert_eq!(parse("512m"), Some(512 << 20));
        assert_eq!(parse("1000"), Some(1000));
        assert_eq!(parse("lots"), None);
        assert_eq!(human(2 << 30), "2 GiB");
        assert_eq!(human(768 << 20), "768 MiB");
    }
}
