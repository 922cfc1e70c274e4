//! How many SMS segments a text takes, as carriers count them.
//!
//! A text made only of characters of the GSM 03.38 alphabet is sent in
//! GSM-7: 160 septets in a single message, 153 per part once it needs a
//! concatenation header. The alphabet's extension table (`€`, `[`, `{`, …)
//! costs two septets each (an escape and the character), and a part never
//! ends between the two. Any other character switches the whole text to
//! UCS-2: 70 UTF-16 code units single, 67 per part, and a character outside
//! the Basic Multilingual Plane (most emoji) is a surrogate pair that is never
//! split either.

use std::fmt;

/// The GSM 03.38 default alphabet, one septet each: every code point but
/// the escape (0x1B) that introduces the extension table.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The extension table: two septets each.
const GSM_EXTENDED: &str = "\u{c}^{}\\[~]|€";

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The GSM 7-bit default alphabet.
    Gsm7,
    /// UTF-16, for texts with any character GSM-7 lacks.
    Ucs2,
}

impl Encoding {
    /// The encoding's name as carriers and output spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm-7",
            Encoding::Ucs2 => "ucs-2",
        }
    }

    /// How many units fit in a single message and in each part of a
    /// concatenated one.
    fn capacity(self) -> (usize, usize) {
        match self {
            Encoding::Gsm7 => (160, 153),
            Encoding::Ucs2 => (70, 67),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        })
    }
}

/// What a text costs to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    /// How it is encoded.
    pub encoding: Encoding,
    /// Its characters, as people count them.
    pub chars: usize,
    /// Its units: septets in GSM-7, UTF-16 code units in UCS-2.
    pub units: usize,
    /// How many messages carriers send (and bill); 0 for an empty text.
    pub count: usize,
}

impl fmt::Display for Segments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.count == 1 { "" } else { "s" };
        let chars = if self.chars == 1 { "character" } else { "characters" };
        write!(f, "{} SMS segment{plural} ({}, {} {chars})", self.count, self.encoding, self.chars)
    }
}

/// The septets a character takes in GSM-7, or `None` when GSM-7 cannot
/// encode it.
fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Counts the segments of `text`.
pub fn count(text: &str) -> Segments {
    let septets: Option<Vec<usize>> = text.chars().map(gsm_septets).collect();
    let (encoding, costs) = match septets {
        Some(costs) => (Encoding::Gsm7, costs),
        None => (Encoding::Ucs2, text.chars().map(char::len_utf16).collect()),
    };
    let units = costs.iter().sum();
    let (single, part) = encoding.capacity();
    let count = if units == 0 {
        0
    } else if units <= single {
        1
    } else {
        // Characters are packed part by part; one that does not fit whole
        // (an escaped GSM character, a surrogate pair) starts the next part.
        let mut parts = 1;
        let mut used = 0;
        for cost in costs {
            if used + cost > part {
                parts += 1;
                used = 0;
            }
            used += cost;
        }
        parts
    };
    Segments { encoding, chars: text.chars().count(), units, count }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> (Encoding, usize, usize) {
        let s = count(text);
        (s.encoding, s.units, s.count)
    }

    #[test]
    fn the_alphabet_has_every_septet_but_the_escape() {
        let basic: std::collections::BTreeSet<char> = GSM_BASIC.chars().collect();
        assert_eq!((GSM_BASIC.chars().count(), basic.len()), (127, 127));
        assert_eq!(GSM_EXTENDED.chars().count(), 10);
        assert!(GSM_EXTENDED.chars().all(|c| !basic.contains(&c)));
    }

    #[test]
    fn an_empty_text_takes_nothing() {
        assert_eq!(of(""), (Encoding::Gsm7, 0, 0));
    }

    #[test]
    fn gsm_fits_160_in_one_and_153_per_part() {
        let a = |n| "a".repeat(n);
        assert_eq!(of(&a(160)), (Encoding::Gsm7, 160, 1));
        assert_eq!(of(&a(161)), (Encoding::Gsm7, 161, 2));
        assert_eq!(of(&a(306)), (Encoding::Gsm7, 306, 2));
        assert_eq!(of(&a(307)), (Encoding::Gsm7, 307, 3));
        assert_eq!(of(&a(459)), (Encoding::Gsm7, 459, 3));
        assert_eq!(of(&a(460)), (Encoding::Gsm7, 460, 4));
    }

    #[test]
    fn accented_letters_of_the_alphabet_stay_gsm() {
        assert_eq!(of("Déjà vu? ¿Señor Müller? Ça coûte 5 £"), (Encoding::Ucs2, 36, 1), "û is not GSM");
        assert_eq!(of("Déjà vu? ¿Señor Müller? 5 £ @ 10:00"), (Encoding::Gsm7, 35, 1));
        assert_eq!(of("line\nbreak\r"), (Encoding::Gsm7, 11, 1));
    }

    #[test]
    fn extension_characters_take_two_septets() {
        assert_eq!(of("€"), (Encoding::Gsm7, 2, 1));
        assert_eq!(of("{[~^|\\]}"), (Encoding::Gsm7, 16, 1));
        assert_eq!(of(&"€".repeat(80)), (Encoding::Gsm7, 160, 1));
        assert_eq!(of(&"€".repeat(81)), (Encoding::Gsm7, 162, 2));
    }

    #[test]
    fn an_escaped_character_never_straddles_two_parts() {
        // 152 + 2 + 152 = 306 septets: two parts of 153 by arithmetic, but
        // the euro cannot start in the first part's last septet.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(of(&text), (Encoding::Gsm7, 306, 3));
        let text = format!("{}€{}", "a".repeat(151), "a".repeat(153));
        assert_eq!(of(&text), (Encoding::Gsm7, 306, 2));
    }

    #[test]
    fn one_character_outside_gsm_makes_the_whole_text_ucs2() {
        assert_eq!(of(&"ł".repeat(70)), (Encoding::Ucs2, 70, 1));
        assert_eq!(of(&"ł".repeat(71)), (Encoding::Ucs2, 71, 2));
        assert_eq!(of(&"ł".repeat(134)), (Encoding::Ucs2, 134, 2));
        assert_eq!(of(&"ł".repeat(135)), (Encoding::Ucs2, 135, 3));
        let mostly_gsm = format!("{}ł", "a".repeat(100));
        assert_eq!(of(&mostly_gsm), (Encoding::Ucs2, 101, 2), "101 units is two UCS-2 parts, not one GSM message");
        assert_eq!(of("Привет"), (Encoding::Ucs2, 6, 1));
    }

    #[test]
    fn emoji_are_surrogate_pairs_never_split() {
        assert_eq!(of("😀"), (Encoding::Ucs2, 2, 1));
        assert_eq!(of(&format!("{}😀", "a".repeat(68))), (Encoding::Ucs2, 70, 1));
        assert_eq!(of(&format!("{}😀", "a".repeat(69))), (Encoding::Ucs2, 71, 2));
        let text = format!("{}😀{}", "a".repeat(66), "a".repeat(66));
        assert_eq!(of(&text), (Encoding::Ucs2, 134, 3), "the pair moves whole to the second part");
    }

    #[test]
    fn display_names_count_encoding_and_characters() {
        assert_eq!(count(&"a".repeat(161)).to_string(), "2 SMS segments (GSM-7, 161 characters)");
        assert_eq!(count("ł").to_string(), "1 SMS segment (UCS-2, 1 character)");
    }
}
