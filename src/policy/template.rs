//! Message templates: `"{amount} {currency} is above {limit}"`.

use std::fmt::Write as _;

/// A placeholder of a message template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Amount,
    Currency,
    Limit,
    Remaining,
    Merchant,
    Policy,
    Code,
    Tool,
    Model,
    Action,
    Period,
}

/// The placeholders a template may use, with what each stands for.
pub const PLACEHOLDERS: [(&str, &str); 11] = [
    (
        "amount",
        "the request's amount, at least to the currency's minor units (`150.00`)",
    ),
    ("currency", "the request's currency code (`USD`)"),
    (
        "limit",
        "the exceeded budget's limit, else the policy's first amount threshold (at its own currency's minor units)",
    ),
    (
        "remaining",
        "what remained in the exceeded budget's window before the request",
    ),
    (
        "merchant",
        "the merchant's name as given, without surrounding spaces",
    ),
    ("policy", "the policy's name"),
    ("code", "the reason code"),
    ("tool", "the tool name"),
    ("model", "the model name"),
    (
        "action",
        "the action kind (`purchase`, `tool_call`, `llm_usage`, `custom:<name>`)",
    ),
    (
        "period",
        "the exceeded budget's period (`daily`, `monthly`, ...)",
    ),
];

const FIELDS: [Field; 11] = [
    Field::Amount,
    Field::Currency,
    Field::Limit,
    Field::Remaining,
    Field::Merchant,
    Field::Policy,
    Field::Code,
    Field::Tool,
    Field::Model,
    Field::Action,
    Field::Period,
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Text(Box<str>),
    Field(Field),
}

/// A parsed template: literal text and placeholders. `{{` and `}}` are literal
/// braces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Template {
    segments: Box<[Segment]>,
    /// Bytes of literal text, to size the rendered message in one allocation.
    text_len: usize,
    /// Whether a placeholder names one of the request's texts.
    request_text: bool,
}

impl Template {
    /// Parses a template, or says what is wrong with it.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(i) = rest.find(['{', '}']) {
            text.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                text.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                text.push('}');
                rest = after;
            } else if tail.starts_with('}') {
                return Err(format!(
                    "unmatched '}}' at byte {} (write '}}}}' for a brace)",
                    s.len() - tail.len()
                ));
            } else {
                let end = tail
                    .find('}')
                    .ok_or_else(|| format!("unclosed '{{' at byte {}", s.len() - tail.len()))?;
                let name = &tail[1..end];
                let field = PLACEHOLDERS
                    .iter()
                    .position(|(n, _)| *n == name)
                    .map(|i| FIELDS[i])
                    .ok_or_else(|| {
                        let known: Vec<&str> = PLACEHOLDERS.iter().map(|(n, _)| *n).collect();
                        format!(
                            "unknown placeholder {{{name}}}; known: {}",
                            known.join(", ")
                        )
                    })?;
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text).into_boxed_str()));
                }
                segments.push(Segment::Field(field));
                rest = &tail[end + 1..];
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            segments.push(Segment::Text(text.into_boxed_str()));
        }
        let text_len = segments
            .iter()
            .map(|seg| match seg {
                Segment::Text(t) => t.len(),
                Segment::Field(_) => 0,
            })
            .sum();
        let request_text = segments.iter().any(|seg| {
            matches!(
                seg,
                Segment::Field(Field::Merchant | Field::Tool | Field::Model | Field::Action)
            )
        });
        Ok(Self {
            segments: segments.into_boxed_slice(),
            text_len,
            request_text,
        })
    }

    /// Whether the template has no text at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Whether the template names one of the request's texts (`{merchant}`,
    /// `{tool}`, `{model}`, `{action}`), which a reason must then copy.
    pub(crate) fn names_request_text(&self) -> bool {
        self.request_text
    }

    /// Whether the template names `field`.
    pub(crate) fn names(&self, field: Field) -> bool {
        self.segments
            .iter()
            .any(|seg| matches!(seg, Segment::Field(f) if *f == field))
    }

    /// The expected length of the rendered message, given the expected length
    /// of each placeholder's value: rendered into a buffer of that capacity,
    /// the message is allocated once when the values are no longer than that.
    pub(crate) fn len_hint(&self, field_len: impl Fn(Field) -> usize) -> usize {
        let fields: usize = self
            .segments
            .iter()
            .map(|seg| match seg {
                Segment::Text(_) => 0,
                Segment::Field(f) => field_len(*f),
            })
            .sum();
        self.text_len + fields
    }

    /// Renders the template onto `out`, asking `value` for each placeholder.
    pub(crate) fn render_into(&self, out: &mut String, mut value: impl FnMut(Field, &mut String)) {
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Field(f) => value(*f, out),
            }
        }
    }
}

/// Writes `d` to `out` with at least `scale` decimal places, exactly as
/// `Decimal`'s `Display` writes it after rescaling (`-` for any negative
/// value, `0.50` for a half at scale 2), without going through `fmt`.
pub(crate) fn write_decimal(out: &mut String, d: rust_decimal::Decimal, scale: u32) {
    let mut shown = d;
    if shown.scale() < scale {
        shown.rescale(scale);
    }
    let scale = shown.scale() as usize;
    // A Decimal's mantissa is below 2^96 (29 digits); its scale is at most 28.
    let mut digits = [b'0'; 40];
    let mut n = shown.mantissa().unsigned_abs();
    let mut start = digits.len();
    while n > 0 && start > 0 {
        start -= 1;
        // The remainder is below 10.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // At least one integer digit: `0.05`, `0`.
    let start = start.min(digits.len().saturating_sub(scale + 1));
    let (Some(int), Some(frac)) = (
        digits.get(start..digits.len() - scale),
        digits.get(digits.len() - scale..),
    ) else {
        let _ = write!(out, "{shown}");
        return;
    };
    let (Ok(int), Ok(frac)) = (std::str::from_utf8(int), std::str::from_utf8(frac)) else {
        let _ = write!(out, "{shown}");
        return;
    };
    if shown.is_sign_negative() {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
}

/// How many bytes [`write_decimal`] writes for an amount at most this size,
/// for sizing a message: a sign, 20 integer digits, a point and 6 decimals.
pub(crate) const DECIMAL_LEN_HINT: usize = 28;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_placeholders_and_escapes() {
        let t = Template::parse("{amount} over {limit} {{literal}}").unwrap();
        let mut s = String::from("> ");
        t.render_into(&mut s, |f, out| {
            out.push_str(if f == Field::Amount { "150.00" } else { "50" })
        });
        assert_eq!(s, "> 150.00 over 50 {literal}");
        assert_eq!(t.len_hint(|_| 6), " over  {literal}".len() + 12);
        assert!(t.names(Field::Amount) && t.names(Field::Limit) && !t.names(Field::Merchant));
        assert!(!t.names_request_text());
        for text in [
            "{merchant}",
            "{tool}",
            "{model}",
            "{action}",
            "a {merchant} b",
        ] {
            assert!(
                Template::parse(text).unwrap().names_request_text(),
                "{text}"
            );
        }
        for text in [
            "{amount}",
            "{policy} {code} {period} {currency}",
            "{remaining}",
            "merchant",
        ] {
            assert!(
                !Template::parse(text).unwrap().names_request_text(),
                "{text}"
            );
        }
        assert!(
            Template::parse("{amont}")
                .unwrap_err()
                .contains("unknown placeholder {amont}")
        );
        assert!(Template::parse("{amount").unwrap_err().contains("unclosed"));
        assert!(Template::parse("a } b").unwrap_err().contains("unmatched"));
        assert_eq!(Template::parse("").unwrap(), Template::default());
    }

    #[test]
    fn decimals_are_written_as_display_writes_them() {
        use rust_decimal::Decimal;
        let mut values = vec![
            Decimal::ZERO,
            -Decimal::ZERO,
            Decimal::new(-0, 2),
            Decimal::ONE,
            Decimal::new(5, 2),
            Decimal::new(-5, 3),
            Decimal::new(150, 0),
            Decimal::new(12_345_678, 4),
            Decimal::new(-12_345_678, 4),
            Decimal::MAX,
            Decimal::MIN,
            Decimal::from_i128_with_scale(1, 28),
            Decimal::from_i128_with_scale(-79_228_162_514_264_337_593_543_950_335, 28),
        ];
        // A fixed-seed sweep of mantissas and scales.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let m = i128::from(x as i64) * i128::from((x >> 40) as u32 + 1);
            values.push(Decimal::from_i128_with_scale(m, (x % 29) as u32));
        }
        for d in values {
            for scale in [0, 2, 3, 6] {
                let mut ours = String::new();
                write_decimal(&mut ours, d, scale);
                let mut shown = d;
                if shown.scale() < scale {
                    shown.rescale(scale);
                }
                assert_eq!(ours, shown.to_string(), "{d:?} at scale {scale}");
            }
        }
    }
}
