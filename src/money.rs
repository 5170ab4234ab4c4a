//! Exact money: [`Currency`], [`Money`] and the stored [`Amount`].
//!
//! Amounts are [`rust_decimal::Decimal`] in the API and never floating point.
//!
//! ## How amounts are stored
//!
//! SQLite has no exact number type wider than 64 bits, and SeaORM's default
//! `Decimal` mapping on SQLite is a `REAL` (a float: `0.1 + 0.2 > 0.3`). A signed
//! 64-bit count of 10⁻⁶ units would be exact but tops out at 9,223,372,036,854.775807,
//! too small for the 20 significant digits bursar promises. So every money column
//! holds an [`Amount`]: a non-negative quantity with at most
//! [`Amount::FRACTION_DIGITS`] (6) decimal places and at most
//! [`Amount::INTEGER_DIGITS`] (20) integer digits, written as fixed-width,
//! zero-padded text (`"00000000000000000009.500000"`). Fixed width makes the byte
//! order of the text the numeric order, so `WHERE amount < ?` and `ORDER BY amount`
//! compare numerically on SQLite (binary collation) and PostgreSQL (the columns are
//! created with `COLLATE "C"`) alike, and every value round-trips exactly. Sums and
//! the budget arithmetic are computed in Rust with checked [`Decimal`] arithmetic,
//! under the database's row locks; see `docs/budgets.md`.
//!
//! ```
//! use bursar::money::{Amount, Currency, Money};
//! use rust_decimal::Decimal;
//! use std::str::FromStr;
//!
//! let usd: Currency = "USD".parse()?;
//! assert_eq!(usd.minor_units(), 2);
//! let price = Money::new(Decimal::from_str("29.99")?, usd)?;
//! let total = price.checked_add(&Money::new(Decimal::from_str("0.01")?, usd)?)?;
//! assert_eq!(total.amount(), Decimal::from(30));
//!
//! let big = Amount::new(Decimal::from_str("12345678901234.123456")?)?;
//! assert_eq!(big.to_db_string(), "00000012345678901234.123456");
//! assert_eq!(Amount::from_db_str(&big.to_db_string())?, big);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use sea_orm::DeriveValueType;
use serde::{Deserialize, Serialize};

/// Why a money value was refused. Every variant carries the offending value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// More decimal places than the storage unit (10⁻⁶) holds.
    #[error("{value} has {scale} decimal places; at most {max} can be stored exactly")]
    TooPrecise {
        /// The value as given.
        value: Decimal,
        /// Its decimal places.
        scale: u32,
        /// The most that are stored.
        max: u32,
    },
    /// Larger than the storage range.
    #[error("{value} does not fit: amounts must be below 10^{max_integer_digits}")]
    Overflow {
        /// The value as given.
        value: String,
        /// The largest number of integer digits stored.
        max_integer_digits: u32,
    },
    /// A negative amount where only non-negative ones are allowed.
    #[error("{value} is negative; stored amounts are never negative")]
    Negative {
        /// The value as given.
        value: Decimal,
    },
    /// Not an ISO 4217 code bursar knows.
    #[error("{code:?} is not a known ISO 4217 currency code")]
    UnknownCurrency {
        /// The code as given.
        code: String,
    },
    /// Arithmetic between two currencies.
    #[error("cannot combine {left} with {right}")]
    CurrencyMismatch {
        /// The left operand's currency.
        left: Currency,
        /// The right operand's currency.
        right: Currency,
    },
    /// Text that is not a plain decimal: digits, optionally a leading `-` and
    /// one `.` between digits (`"12.50"`, `"-0.9"`). Exponents, `+`, spaces,
    /// digit separators, `NaN`, `inf`, hexadecimal, `".5"` and `"5."` are all
    /// refused.
    #[error(
        "{value:?} is not a plain decimal number (digits, an optional leading '-' and '.' between digits, e.g. \"12.50\")"
    )]
    NotDecimal {
        /// The text as given.
        value: String,
    },
    /// Text read from a money column was not in the stored format.
    #[error("{value:?} is not a stored amount")]
    Malformed {
        /// The text as read.
        value: String,
    },
}

impl MoneyError {
    /// The input field this error is about: `"currency"` or `"amount"`.
    #[must_use]
    pub fn field(&self) -> &'static str {
        match self {
            Self::UnknownCurrency { .. } | Self::CurrencyMismatch { .. } => "currency",
            _ => "amount",
        }
    }
}

impl From<MoneyError> for crate::Error {
    fn from(err: MoneyError) -> Self {
        crate::Error::Invalid {
            field: err.field().to_owned(),
            reason: err.to_string(),
        }
    }
}

/// Parses a plain decimal: `-?[0-9]+(\.[0-9]+)?`, nothing else, exactly
/// (never rounded). Every amount bursar reads from text goes through it.
///
/// ```
/// use bursar::money::parse_decimal;
/// assert_eq!(parse_decimal("12.50")?.to_string(), "12.50");
/// assert!(parse_decimal("1e3").is_err());
/// assert!(parse_decimal(" 5").is_err());
/// # Ok::<(), bursar::money::MoneyError>(())
/// ```
///
/// # Errors
/// [`MoneyError::NotDecimal`] naming the text when it is not a plain decimal
/// or has more digits than a [`Decimal`] holds.
pub fn parse_decimal(text: &str) -> Result<Decimal, MoneyError> {
    let not_decimal = || MoneyError::NotDecimal {
        value: text.to_owned(),
    };
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return Err(not_decimal());
    }
    Decimal::from_str_exact(text).map_err(|_| not_decimal())
}

/// Serde for a [`Decimal`] as a plain-decimal string (see [`parse_decimal`]):
/// `#[serde(with = "bursar::money::decimal_text")]`. Every money field of
/// bursar's own types reads through it; use it for amounts in your own
/// request bodies too.
pub mod decimal_text {
    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the decimal as a string (`"12.50"`).
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    /// Reads a string holding a plain decimal.
    ///
    /// # Errors
    /// When the value is not a string or not a plain decimal.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::parse_decimal(&text).map_err(serde::de::Error::custom)
    }

    /// The same for an `Option<Decimal>` (`null` or absent is `None`; pair
    /// it with `#[serde(default)]`).
    pub mod option {
        use rust_decimal::Decimal;
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes the decimal as a string, or `null`.
        ///
        /// # Errors
        /// The serializer's.
        pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => s.collect_str(v),
                None => s.serialize_none(),
            }
        }

        /// Reads `null` or a string holding a plain decimal.
        ///
        /// # Errors
        /// When the value is neither `null` nor a plain-decimal string.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
            let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
            text.map(|t| super::super::parse_decimal(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// An ISO 4217 currency with its number of minor units (USD 2, JPY 0, BHD 3).
///
/// Serializes as its three-letter code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    minor_units: u8,
}

/// Active ISO 4217 codes and their minor units.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYI", 0),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

impl Currency {
    /// United States dollar.
    pub const USD: Currency = Currency::known(*b"USD", 2);
    /// Euro.
    pub const EUR: Currency = Currency::known(*b"EUR", 2);
    /// Pound sterling.
    pub const GBP: Currency = Currency::known(*b"GBP", 2);
    /// Japanese yen (no minor unit).
    pub const JPY: Currency = Currency::known(*b"JPY", 0);
    /// Bahraini dinar (three minor digits).
    pub const BHD: Currency = Currency::known(*b"BHD", 3);

    const fn known(code: [u8; 3], minor_units: u8) -> Self {
        Self { code, minor_units }
    }

    /// Looks up an ISO 4217 code. Surrounding whitespace and letter case are
    /// ignored (`" usd "` is USD).
    ///
    /// # Errors
    /// [`MoneyError::UnknownCurrency`] naming the code when it is not an active
    /// ISO 4217 code.
    pub fn from_code(code: &str) -> Result<Self, MoneyError> {
        let wanted = code.trim();
        CURRENCIES
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(wanted))
            .map(|(c, minor)| {
                let b = c.as_bytes();
                Self::known([b[0], b[1], b[2]], *minor)
            })
            .ok_or_else(|| MoneyError::UnknownCurrency {
                code: code.to_owned(),
            })
    }

    /// The three-letter code, e.g. `"USD"`.
    #[must_use]
    pub fn code(&self) -> &str {
        // The code is always three ASCII letters from the table above.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Number of decimal places of the currency's minor unit (USD 2, JPY 0).
    #[must_use]
    pub const fn minor_units(&self) -> u32 {
        self.minor_units as u32
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Self::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// A non-negative, exactly stored quantity of money (or of any unit priced in
/// money, such as an LLM cost): at most 6 decimal places, below 10²⁰.
///
/// This is the type of every money column; see the [module docs](self) for the
/// storage format and why it was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, DeriveValueType)]
#[sea_orm(
    value_type = "String",
    from_str = "Amount::from_db_str",
    to_str = "Amount::to_db_string",
    column_type = "Char(Some(27))"
)]
pub struct Amount(Decimal);

impl Amount {
    /// Decimal places stored exactly.
    pub const FRACTION_DIGITS: u32 = 6;
    /// Integer digits stored.
    pub const INTEGER_DIGITS: u32 = 20;
    /// Width of the stored text: integer digits, a point, fraction digits.
    pub const DB_WIDTH: usize = (Self::INTEGER_DIGITS + 1 + Self::FRACTION_DIGITS) as usize;
    /// Zero.
    pub const ZERO: Amount = Amount(Decimal::ZERO);

    /// Checks that `value` can be stored exactly.
    ///
    /// # Errors
    /// [`MoneyError::Negative`], [`MoneyError::TooPrecise`] (more than 6 decimal
    /// places after trailing zeros are dropped) or [`MoneyError::Overflow`], each
    /// naming the value.
    pub fn new(value: Decimal) -> Result<Self, MoneyError> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err(MoneyError::Negative { value });
        }
        let normalized = value.normalize();
        if normalized.scale() > Self::FRACTION_DIGITS {
            return Err(MoneyError::TooPrecise {
                value,
                scale: normalized.scale(),
                max: Self::FRACTION_DIGITS,
            });
        }
        if normalized >= Self::bound() {
            return Err(MoneyError::Overflow {
                value: value.to_string(),
                max_integer_digits: Self::INTEGER_DIGITS,
            });
        }
        Ok(Self(normalized.abs()))
    }

    fn bound() -> Decimal {
        // 10^20 fits comfortably in a Decimal (max ≈ 7.9 × 10^28).
        Decimal::from_i128_with_scale(100_000_000_000_000_000_000, 0)
    }

    /// The value as a [`Decimal`].
    #[must_use]
    pub const fn get(self) -> Decimal {
        self.0
    }

    /// Whether this is zero.
    #[must_use]
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// `self + other`, or [`MoneyError::Overflow`] when the sum cannot be stored.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] naming the sum.
    pub fn checked_add(self, other: Amount) -> Result<Amount, MoneyError> {
        let sum = self
            .0
            .checked_add(other.0)
            .ok_or_else(|| MoneyError::Overflow {
                value: format!("{} + {}", self.0, other.0),
                max_integer_digits: Self::INTEGER_DIGITS,
            })?;
        Self::new(sum)
    }

    /// `self - other`, or `None` when the result would be negative.
    #[must_use]
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        (self.0 >= other.0).then(|| Amount(self.0 - other.0))
    }

    /// `self - other`, floored at zero.
    #[must_use]
    pub fn saturating_sub(self, other: Amount) -> Amount {
        self.checked_sub(other).unwrap_or(Amount::ZERO)
    }

    /// The fixed-width text stored in the database, e.g.
    /// `"00000000000000000009.500000"` for 9.5.
    #[must_use]
    pub fn to_db_string(&self) -> String {
        let micros = self.micros();
        let unit = 10_i128.pow(Self::FRACTION_DIGITS);
        format!(
            "{:0iw$}.{:0fw$}",
            micros / unit,
            micros % unit,
            iw = Self::INTEGER_DIGITS as usize,
            fw = Self::FRACTION_DIGITS as usize
        )
    }

    fn micros(&self) -> i128 {
        let mut d = self.0;
        d.rescale(Self::FRACTION_DIGITS);
        d.mantissa()
    }

    /// Parses the stored text written by [`Amount::to_db_string`].
    ///
    /// # Errors
    /// [`MoneyError::Malformed`] naming the text.
    pub fn from_db_str(s: &str) -> Result<Self, MoneyError> {
        let malformed = || MoneyError::Malformed {
            value: s.to_owned(),
        };
        let bytes = s.as_bytes();
        let int_len = Self::INTEGER_DIGITS as usize;
        if bytes.len() != Self::DB_WIDTH || bytes[int_len] != b'.' {
            return Err(malformed());
        }
        let digits_ok = bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == int_len || b.is_ascii_digit());
        if !digits_ok {
            return Err(malformed());
        }
        let int: i128 = s[..int_len].parse().map_err(|_| malformed())?;
        let frac: i128 = s[int_len + 1..].parse().map_err(|_| malformed())?;
        let micros = int * 10_i128.pow(Self::FRACTION_DIGITS) + frac;
        Ok(Self(
            Decimal::from_i128_with_scale(micros, Self::FRACTION_DIGITS).normalize(),
        ))
    }
}

impl TryFrom<Decimal> for Amount {
    type Error = MoneyError;
    fn try_from(value: Decimal) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Amount> for Decimal {
    fn from(a: Amount) -> Self {
        a.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Serialize::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = decimal_text::deserialize(d)?;
        Self::new(value).map_err(serde::de::Error::custom)
    }
}

/// An amount in a currency. May be negative (a refund, an adjustment); must
/// fit the storage unit (see [`Amount`]).
///
/// JSON: `{"amount": "12.50", "currency": "EUR"}`, the amount a plain-decimal
/// string (see [`parse_decimal`]), checked as [`Money::new`] checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyRepr")]
pub struct Money {
    #[serde(with = "decimal_text")]
    amount: Decimal,
    currency: Currency,
}

/// The JSON form of [`Money`], read before [`Money::new`] checks it.
#[derive(Deserialize)]
struct MoneyRepr {
    #[serde(with = "decimal_text")]
    amount: Decimal,
    currency: Currency,
}

impl TryFrom<MoneyRepr> for Money {
    type Error = MoneyError;
    fn try_from(r: MoneyRepr) -> Result<Self, Self::Error> {
        Money::new(r.amount, r.currency)
    }
}

impl Money {
    /// An amount in `currency`.
    ///
    /// # Errors
    /// [`MoneyError::TooPrecise`] or [`MoneyError::Overflow`] naming the value when
    /// its magnitude cannot be stored exactly.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        Amount::new(amount.abs())?;
        Ok(Self {
            amount: amount.normalize(),
            currency,
        })
    }

    /// Parses an amount and a currency code, e.g. `Money::parse("12.50", "EUR")`.
    /// The amount is a plain decimal ([`parse_decimal`]): `"1e3"`, `" 5"` or
    /// `"+5"` are refused.
    ///
    /// # Errors
    /// [`MoneyError::NotDecimal`] when the amount is not a plain decimal, or
    /// any error of [`Currency::from_code`] and [`Money::new`].
    pub fn parse(amount: &str, currency: &str) -> Result<Self, MoneyError> {
        let currency = Currency::from_code(currency)?;
        Self::new(parse_decimal(amount)?, currency)
    }

    /// Zero in `currency`.
    #[must_use]
    pub const fn zero(currency: Currency) -> Self {
        Self {
            amount: Decimal::ZERO,
            currency,
        }
    }

    /// The amount.
    #[must_use]
    pub const fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    #[must_use]
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// Whether the amount is a whole number of the currency's minor units
    /// (`12.34` USD is, `12.345` USD is not; usage costs often are not).
    #[must_use]
    pub fn is_whole_minor_units(&self) -> bool {
        self.amount.normalize().scale() <= self.currency.minor_units()
    }

    /// The stored form of a non-negative amount.
    ///
    /// # Errors
    /// [`MoneyError::Negative`] naming the value.
    pub fn to_amount(&self) -> Result<Amount, MoneyError> {
        Amount::new(self.amount)
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    /// `self + other` in the same currency.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let sum = self
            .amount
            .checked_add(other.amount)
            .ok_or_else(|| MoneyError::Overflow {
                value: format!("{} + {}", self.amount, other.amount),
                max_integer_digits: Amount::INTEGER_DIGITS,
            })?;
        Money::new(sum, self.currency)
    }

    /// `self - other` in the same currency.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let diff = self
            .amount
            .checked_sub(other.amount)
            .ok_or_else(|| MoneyError::Overflow {
                value: format!("{} - {}", self.amount, other.amount),
                max_integer_digits: Amount::INTEGER_DIGITS,
            })?;
        Money::new(diff, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.amount;
        if shown.scale() < self.currency.minor_units() {
            shown.rescale(self.currency.minor_units());
        }
        write!(f, "{shown} {}", self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn stored_text_is_fixed_width_and_round_trips() {
        for s in [
            "0",
            "0.000001",
            "9.5",
            "100",
            "12345678901234.123456",
            "99999999999999999999.999999",
        ] {
            let a = Amount::new(d(s)).unwrap();
            let text = a.to_db_string();
            assert_eq!(text.len(), Amount::DB_WIDTH, "{text}");
            assert_eq!(Amount::from_db_str(&text).unwrap().get(), d(s));
        }
    }

    #[test]
    fn byte_order_of_stored_text_is_numeric_order() {
        let mut values: Vec<Amount> = [
            "100",
            "9.5",
            "0.000001",
            "0",
            "10",
            "99.999999",
            "12345678901234.123456",
        ]
        .iter()
        .map(|s| Amount::new(d(s)).unwrap())
        .collect();
        let mut by_text = values.clone();
        by_text.sort_by_key(Amount::to_db_string);
        values.sort();
        assert_eq!(values, by_text);
    }

    #[test]
    fn refuses_what_cannot_be_stored_and_names_the_value() {
        let err = Amount::new(d("0.0000001")).unwrap_err();
        assert!(matches!(err, MoneyError::TooPrecise { scale: 7, .. }));
        assert!(err.to_string().contains("0.0000001"), "{err}");
        let err = Amount::new(d("100000000000000000000")).unwrap_err();
        assert!(matches!(err, MoneyError::Overflow { .. }));
        assert!(err.to_string().contains("100000000000000000000"), "{err}");
        let err = Amount::new(d("-1")).unwrap_err();
        assert_eq!(err, MoneyError::Negative { value: d("-1") });
        let err = Currency::from_code("XYZ").unwrap_err();
        assert_eq!(err, MoneyError::UnknownCurrency { code: "XYZ".into() });
        assert!(err.to_string().contains("XYZ"));
        let err: crate::Error = err.into();
        assert!(matches!(err, crate::Error::Invalid { ref field, .. } if field == "currency"));
        assert!(Amount::from_db_str("9.5").is_err());
        assert!(Amount::from_db_str("0000000000000000000a.500000").is_err());
    }

    #[test]
    fn trailing_zeros_do_not_count_as_precision() {
        assert_eq!(Amount::new(d("1.50000000")).unwrap().get(), d("1.5"));
    }

    #[test]
    fn currencies_know_their_minor_units_and_refuse_mixing() {
        assert_eq!(Currency::from_code(" jpy ").unwrap(), Currency::JPY);
        assert_eq!(Currency::BHD.minor_units(), 3);
        let usd = Money::parse("1.10", "USD").unwrap();
        let eur = Money::parse("1", "EUR").unwrap();
        assert!(matches!(
            usd.checked_add(&eur),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert_eq!(usd.to_string(), "1.10 USD");
        assert!(usd.is_whole_minor_units());
        assert!(!Money::parse("0.001", "USD").unwrap().is_whole_minor_units());
        assert_eq!(
            usd.checked_sub(&Money::parse("2", "USD").unwrap())
                .unwrap()
                .amount(),
            d("-0.9")
        );
    }
}
