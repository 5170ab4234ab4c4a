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
        "the exceeded budget's limit, else the policy's first amount threshold",
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
        Ok(Self {
            segments: segments.into_boxed_slice(),
        })
    }

    /// Whether the template has no text at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Renders the template, asking `value` for each placeholder.
    pub(crate) fn render(&self, mut value: impl FnMut(Field, &mut String)) -> String {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Field(f) => value(*f, &mut out),
            }
        }
        out
    }
}

/// Writes `d` to `out` with at least `scale` decimal places.
pub(crate) fn write_decimal(out: &mut String, d: rust_decimal::Decimal, scale: u32) {
    let mut shown = d;
    if shown.scale() < scale {
        shown.rescale(scale);
    }
    let _ = write!(out, "{shown}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_placeholders_and_escapes() {
        let t = Template::parse("{amount} over {limit} {{literal}}").unwrap();
        let s = t.render(|f, out| out.push_str(if f == Field::Amount { "150.00" } else { "50" }));
        assert_eq!(s, "150.00 over 50 {literal}");
        assert!(
            Template::parse("{amont}")
                .unwrap_err()
                .contains("unknown placeholder {amont}")
        );
        assert!(Template::parse("{amount").unwrap_err().contains("unclosed"));
        assert!(Template::parse("a } b").unwrap_err().contains("unmatched"));
        assert_eq!(Template::parse("").unwrap(), Template::default());
    }
}
