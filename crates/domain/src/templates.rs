//! Message templates: checking and rendering the `{{ path }}` tokens of SPEC §7,
//! and spotting the legacy merge syntax that SPEC §4 defers.
//!
//! # Syntax
//!
//! - `{{ contact.first_name }}` renders a value of the [`Subject`]; whitespace
//!   inside the braces is optional.
//! - `{{ contact.first_name | "there" }}` renders `there` when the value is
//!   absent. The default is a double-quoted string where `\"` and `\\` stand for
//!   a quote and a backslash.
//! - `\{{` renders a literal `{{` (the backslash is dropped). A backslash
//!   anywhere else, single braces, and `}}` outside a token are plain text, so
//!   `\\{{contact.id}}` renders `\{{contact.id}}`.
//!
//! The paths are those of [`known_paths`] plus `contact.attributes.<name>`,
//! where the name is made of ASCII letters, digits, `_` and `-`. A value is
//! absent when its record is missing (no owner, no company), when it is `None`,
//! or when it is empty or only whitespace. An attribute is absent when the
//! contact does not have it; any attribute name passes [`check`], because
//! attributes are free-form.
//!
//! A template is parsed once into a list of segments that borrow from it, then
//! rendered into one pre-sized `String`: text is copied as is, and a default
//! allocates only when it contains escapes.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use crate::crm::{AttributeValue, ContactKind, Subject};

/// A template that cannot be used, and where the problem is.
///
/// Displayed as one line, such as
/// `unknown token "contact.nickname" at byte 6 (did you mean "contact.first_name"?)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} at byte {offset}{}", Headline(.kind), Hint(.kind))]
pub struct TemplateError {
    /// Byte offset into the template: the opening `{{` of the token for
    /// [`UnknownToken`](TemplateErrorKind::UnknownToken),
    /// [`Unterminated`](TemplateErrorKind::Unterminated) and
    /// [`EmptyToken`](TemplateErrorKind::EmptyToken); the offending byte of the
    /// default for [`BadDefault`](TemplateErrorKind::BadDefault).
    pub offset: usize,
    /// What is wrong.
    pub kind: TemplateErrorKind,
}

/// What is wrong with a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// The path is not one of [`known_paths`] nor an attribute.
    UnknownToken {
        /// The path as written, without the surrounding whitespace.
        token: String,
        /// The closest known path, when one is close enough to be a likely typo.
        suggestion: Option<String>,
    },
    /// A `{{` has no matching `}}`.
    Unterminated,
    /// A token has no path: `{{ }}`.
    EmptyToken,
    /// The default after `|` is not a well-formed double-quoted string, or
    /// something other than `}}` follows it; the text says which.
    BadDefault(String),
}

/// The first part of an error message, before the offset.
struct Headline<'a>(&'a TemplateErrorKind);

impl fmt::Display for Headline<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TemplateErrorKind::UnknownToken { token, .. } => write!(f, "unknown token {token:?}"),
            TemplateErrorKind::Unterminated => f.write_str("unterminated token"),
            TemplateErrorKind::EmptyToken => f.write_str("empty token"),
            TemplateErrorKind::BadDefault(_) => f.write_str("malformed default"),
        }
    }
}

/// The parenthesized part of an error message after the offset, if any.
struct Hint<'a>(&'a TemplateErrorKind);

impl fmt::Display for Hint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            TemplateErrorKind::UnknownToken { suggestion: Some(path), .. } => {
                write!(f, " (did you mean \"{path}\"?)")
            }
            TemplateErrorKind::Unterminated => f.write_str(" (missing `}}`)"),
            TemplateErrorKind::BadDefault(why) => write!(f, " ({why})"),
            TemplateErrorKind::UnknownToken { suggestion: None, .. } | TemplateErrorKind::EmptyToken => Ok(()),
        }
    }
}

/// A token as written in a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token {
    /// The path, such as `contact.first_name`, without the surrounding whitespace.
    pub path: String,
    /// The default, with its escapes resolved.
    pub default: Option<String>,
    /// Byte offset of the token's opening `{{`.
    pub offset: usize,
}

/// Checks that `template` parses and uses only known tokens, without rendering
/// it. Use it when a step is saved, where there is no subject.
///
/// # Errors
///
/// The first problem in the template: an unknown path, an unterminated or
/// empty token, or a malformed default.
///
/// # Examples
///
/// ```
/// use stepwise_domain::templates::check;
///
/// assert!(check("Hi {{ contact.first_name | \"there\" }}").is_ok());
///
/// let error = check("Hi {{ contact.nickname }}").unwrap_err();
/// assert_eq!(error.offset, 3);
/// assert_eq!(
///     error.to_string(),
///     r#"unknown token "contact.nickname" at byte 3 (did you mean "contact.first_name"?)"#,
/// );
/// ```
pub fn check(template: &str) -> Result<(), TemplateError> {
    parse(template).map(drop)
}

/// Lists the tokens of `template` in order of appearance, with their defaults
/// unescaped.
///
/// # Errors
///
/// As [`check`]: the first problem in the template.
///
/// # Examples
///
/// ```
/// use stepwise_domain::templates::{tokens, Token};
///
/// let found = tokens("Hi {{contact.first_name | \"there\"}}, {{ owner.name }}")?;
/// assert_eq!(
///     found,
///     [
///         Token { path: "contact.first_name".into(), default: Some("there".into()), offset: 3 },
///         Token { path: "owner.name".into(), default: None, offset: 37 },
///     ],
/// );
/// # Ok::<(), stepwise_domain::templates::TemplateError>(())
/// ```
pub fn tokens(template: &str) -> Result<Vec<Token>, TemplateError> {
    let segments = parse(template)?;
    Ok(segments
        .into_iter()
        .filter_map(|segment| match segment {
            Segment::Text(_) => None,
            Segment::Token(token) => Some(Token {
                path: token.path.to_owned(),
                default: token.default.map(Cow::into_owned),
                offset: token.offset,
            }),
        })
        .collect())
}

/// Renders `template` for `subject`. A token whose value is absent renders its
/// default, or nothing when it has none.
///
/// # Errors
///
/// As [`check`]: a template that does not check is never partly rendered.
///
/// # Examples
///
/// ```
/// use stepwise_domain::crm::{Contact, Subject};
/// use stepwise_domain::templates::render;
///
/// let subject = Subject {
///     contact: Contact { first_name: "Ada".into(), ..Contact::default() },
///     ..Subject::default()
/// };
/// let text = render("Hi {{ contact.first_name }}, from {{ owner.name | \"the team\" }}", &subject)?;
/// assert_eq!(text, "Hi Ada, from the team");
/// # Ok::<(), stepwise_domain::templates::TemplateError>(())
/// ```
pub fn render(template: &str, subject: &Subject) -> Result<String, TemplateError> {
    let segments = parse(template)?;
    // Values are usually about as long as the tokens they replace, so the
    // template's length is a good first guess and most renders never regrow.
    let mut out = String::with_capacity(template.len());
    for segment in &segments {
        match segment {
            Segment::Text(text) => out.push_str(text),
            Segment::Token(token) => match token.field.value(subject) {
                Some(value) => value.push_to(&mut out),
                None => out.push_str(token.default.as_deref().unwrap_or_default()),
            },
        }
    }
    Ok(out)
}

/// Whether `template` contains a legacy merge field such as
/// `{!Contact.FirstName}`, `{!Lead.Email}` or `{!User.Name}`: `{!`, an
/// identifier (optionally `$`-prefixed, as in `{!$User.Name}`) possibly
/// dotted, then `}`. The engine defers such actions with the reason
/// `legacy_merge_syntax` rather than send the field as text.
///
/// # Examples
///
/// ```
/// use stepwise_domain::templates::has_legacy_merge_syntax;
///
/// assert!(has_legacy_merge_syntax("Hi {!Contact.FirstName},"));
/// assert!(!has_legacy_merge_syntax("Hi {{contact.first_name}},"));
/// assert!(!has_legacy_merge_syntax("{!}"));
/// ```
#[must_use]
pub fn has_legacy_merge_syntax(template: &str) -> bool {
    let bytes = template.as_bytes();
    let mut from = 0;
    while let Some(found) = template[from..].find("{!") {
        let mut at = from + found + 2;
        from = at;
        if bytes.get(at) == Some(&b'$') {
            at += 1;
        }
        if !bytes.get(at).is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_') {
            continue;
        }
        let name = bytes[at..].iter().take_while(|&&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.').count();
        if bytes.get(at + name) == Some(&b'}') {
            return true;
        }
    }
    false
}

/// The fixed token paths, in documentation order. Attributes come on top of
/// these, as `contact.attributes.<name>`.
///
/// # Examples
///
/// ```
/// use stepwise_domain::templates::known_paths;
///
/// assert!(known_paths().contains(&"contact.first_name"));
/// assert!(known_paths().contains(&"signature"));
/// ```
#[must_use]
pub fn known_paths() -> &'static [&'static str] {
    &PATHS
}

/// What every attribute path starts with.
const ATTRIBUTE_PREFIX: &str = "contact.attributes.";

/// A value a token can name. Attributes borrow their name from the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field<'a> {
    ContactId,
    ContactFirstName,
    ContactLastName,
    ContactFullName,
    ContactEmail,
    ContactPhone,
    ContactKind,
    ContactType,
    ContactLeadSource,
    ContactSalesCycle,
    ContactTimezone,
    ContactOwnerId,
    ContactCompanyId,
    Attribute(&'a str),
    OwnerId,
    OwnerName,
    OwnerFirstName,
    OwnerEmail,
    OwnerTimezone,
    CompanyId,
    CompanyName,
    Signature,
}

/// The fixed paths and what they name: the one list both [`known_paths`] and
/// the parser read, so they cannot disagree.
const FIELDS: [(&str, Field<'static>); 21] = [
    ("contact.id", Field::ContactId),
    ("contact.first_name", Field::ContactFirstName),
    ("contact.last_name", Field::ContactLastName),
    ("contact.full_name", Field::ContactFullName),
    ("contact.email", Field::ContactEmail),
    ("contact.phone", Field::ContactPhone),
    ("contact.kind", Field::ContactKind),
    ("contact.contact_type", Field::ContactType),
    ("contact.lead_source", Field::ContactLeadSource),
    ("contact.sales_cycle", Field::ContactSalesCycle),
    ("contact.timezone", Field::ContactTimezone),
    ("contact.owner_id", Field::ContactOwnerId),
    ("contact.company_id", Field::ContactCompanyId),
    ("owner.id", Field::OwnerId),
    ("owner.name", Field::OwnerName),
    ("owner.first_name", Field::OwnerFirstName),
    ("owner.email", Field::OwnerEmail),
    ("owner.timezone", Field::OwnerTimezone),
    ("company.id", Field::CompanyId),
    ("company.name", Field::CompanyName),
    ("signature", Field::Signature),
];

static PATHS: [&str; FIELDS.len()] = {
    let mut paths = [""; FIELDS.len()];
    let mut i = 0;
    while i < FIELDS.len() {
        paths[i] = FIELDS[i].0;
        i += 1;
    }
    paths
};

/// What a path names, if it is known.
fn resolve(path: &str) -> Option<Field<'_>> {
    if let Some(name) = path.strip_prefix(ATTRIBUTE_PREFIX) {
        return is_attribute_name(name).then_some(Field::Attribute(name));
    }
    FIELDS.iter().find(|(known, _)| *known == path).map(|&(_, field)| field)
}

fn is_attribute_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A present value, borrowed from the subject.
enum Value<'s> {
    Text(&'s str),
    /// Two parts joined by a space, so a full name needs no allocation.
    Joined(&'s str, &'s str),
    /// A number or a flag, written with the model's `Display`.
    Attribute(&'s AttributeValue),
}

impl Value<'_> {
    fn push_to(&self, out: &mut String) {
        match self {
            Value::Text(text) => out.push_str(text),
            Value::Joined(first, last) => {
                out.push_str(first);
                out.push(' ');
                out.push_str(last);
            }
            // Writing to a `String` cannot fail.
            Value::Attribute(value) => drop(write!(out, "{value}")),
        }
    }
}

impl Field<'_> {
    /// The field's value for `subject`, or `None` when it is absent.
    fn value(self, subject: &Subject) -> Option<Value<'_>> {
        let contact = &subject.contact;
        let owner = subject.owner.as_ref();
        let company = subject.company.as_ref();
        let text: &str = match self {
            Field::ContactId => &contact.id,
            Field::ContactFirstName => &contact.first_name,
            Field::ContactLastName => &contact.last_name,
            Field::ContactFullName => return full_name(&contact.first_name, &contact.last_name),
            Field::ContactEmail => contact.email.as_deref()?,
            Field::ContactPhone => contact.phone.as_deref()?,
            Field::ContactKind => match contact.kind {
                ContactKind::Lead => "lead",
                ContactKind::Contact => "contact",
            },
            Field::ContactType => &contact.contact_type,
            Field::ContactLeadSource => contact.lead_source.as_deref()?,
            Field::ContactSalesCycle => contact.sales_cycle.as_deref()?,
            Field::ContactTimezone => contact.timezone.as_deref()?,
            Field::ContactOwnerId => contact.owner_id.as_deref()?,
            Field::ContactCompanyId => contact.company_id.as_deref()?,
            Field::Attribute(name) => match contact.attributes.get(name)? {
                AttributeValue::Text(text) => text,
                other => return Some(Value::Attribute(other)),
            },
            Field::OwnerId => &owner?.id,
            Field::OwnerName => &owner?.name,
            Field::OwnerFirstName => owner?.name.split_whitespace().next()?,
            Field::OwnerEmail => &owner?.email,
            Field::OwnerTimezone => &owner?.timezone,
            Field::CompanyId => &company?.id,
            Field::CompanyName => &company?.name,
            Field::Signature => &owner?.signature,
        };
        // A blank value would leave "Hi ," in the message; the default exists
        // for exactly that case, so blank counts as absent.
        (!text.trim().is_empty()).then_some(Value::Text(text))
    }
}

/// First and last name joined by a space, each trimmed, so that a missing part
/// leaves no stray space.
fn full_name<'s>(first: &'s str, last: &'s str) -> Option<Value<'s>> {
    match (first.trim(), last.trim()) {
        ("", "") => None,
        (name, "") | ("", name) => Some(Value::Text(name)),
        (first, last) => Some(Value::Joined(first, last)),
    }
}

/// A run of a parsed template.
enum Segment<'a> {
    /// Literal text, escapes already removed.
    Text(&'a str),
    Token(ParsedToken<'a>),
}

struct ParsedToken<'a> {
    path: &'a str,
    field: Field<'a>,
    /// Borrowed unless the default had escapes to resolve.
    default: Option<Cow<'a, str>>,
    offset: usize,
}

/// Splits `template` into text and resolved tokens, stopping at the first
/// problem.
fn parse(template: &str) -> Result<Vec<Segment<'_>>, TemplateError> {
    let bytes = template.as_bytes();
    let mut segments = Vec::new();
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"\\{{") {
            push_text(&mut segments, &template[text_start..i]);
            // The backslash is dropped; the braces open the next run of text.
            text_start = i + 1;
            i += 3;
        } else if rest.starts_with(b"{{") {
            push_text(&mut segments, &template[text_start..i]);
            let (token, end) = parse_token(template, i)?;
            segments.push(Segment::Token(token));
            text_start = end;
            i = end;
        } else {
            i += 1;
        }
    }
    push_text(&mut segments, &template[text_start..]);
    Ok(segments)
}

fn push_text<'a>(segments: &mut Vec<Segment<'a>>, text: &'a str) {
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
}

/// Parses the token whose `{{` is at `start`; returns it and the offset just
/// past its `}}`.
fn parse_token(template: &str, start: usize) -> Result<(ParsedToken<'_>, usize), TemplateError> {
    let bytes = template.as_bytes();
    let path_start = start + 2;
    let mut i = path_start;
    let path_end = loop {
        match bytes.get(i) {
            None => return Err(error(start, TemplateErrorKind::Unterminated)),
            Some(b'|') => break i,
            Some(b'}') if bytes.get(i + 1) == Some(&b'}') => break i,
            // Another token opens before this one closes: the author forgot a
            // `}}`, and saying so beats an "unknown token" made of the text in
            // between.
            Some(b'{') if bytes.get(i + 1) == Some(&b'{') => {
                return Err(error(start, TemplateErrorKind::Unterminated));
            }
            Some(_) => i += 1,
        }
    };
    let path = template[path_start..path_end].trim();
    if path.is_empty() {
        return Err(error(start, TemplateErrorKind::EmptyToken));
    }
    let (default, end) = if bytes[path_end] == b'|' {
        let (default, end) = parse_default(template, start, path_end + 1)?;
        (Some(default), end)
    } else {
        (None, path_end + 2)
    };
    // Syntax first: the path is only judged once the token's extent is sure.
    let Some(field) = resolve(path) else {
        let kind = TemplateErrorKind::UnknownToken { token: path.to_owned(), suggestion: suggest(path) };
        return Err(error(start, kind));
    };
    Ok((ParsedToken { path, field, default, offset: start }, end))
}

/// Parses the default that follows the `|` of the token at `start`; `from` is
/// just past the `|`. Returns the default and the offset just past the `}}`.
fn parse_default(template: &str, start: usize, from: usize) -> Result<(Cow<'_, str>, usize), TemplateError> {
    let bytes = template.as_bytes();
    let bad = |offset, why: &str| error(offset, TemplateErrorKind::BadDefault(why.to_owned()));
    let open = skip_whitespace(template, from);
    match bytes.get(open) {
        Some(b'"') => {}
        Some(_) => return Err(bad(open, "expected a double-quoted string after `|`")),
        None => return Err(error(start, TemplateErrorKind::Unterminated)),
    }
    let mut escaped = false;
    let mut i = open + 1;
    let close = loop {
        match bytes.get(i) {
            None => return Err(bad(open, "unterminated string")),
            Some(b'"') => break i,
            Some(b'\\') => match bytes.get(i + 1) {
                Some(b'"' | b'\\') => {
                    escaped = true;
                    i += 2;
                }
                None => return Err(bad(open, "unterminated string")),
                Some(_) => {
                    // The byte after an ASCII backslash starts a character.
                    let next = template[i + 1..].chars().next().unwrap_or_default();
                    return Err(bad(i, &format!("unsupported escape `\\{next}`; only `\\\"` and `\\\\` exist")));
                }
            },
            Some(_) => i += 1,
        }
    };
    let raw = &template[open + 1..close];
    let default = if escaped { Cow::Owned(unescape(raw)) } else { Cow::Borrowed(raw) };
    let after = skip_whitespace(template, close + 1);
    if bytes[after..].starts_with(b"}}") {
        Ok((default, after + 2))
    } else if template[after..].contains("}}") {
        Err(bad(after, "unexpected text after the default"))
    } else {
        Err(error(start, TemplateErrorKind::Unterminated))
    }
}

/// Resolves `\"` and `\\`, the only escapes [`parse_default`] lets through.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        out.extend(if c == '\\' { chars.next() } else { Some(c) });
    }
    out
}

/// The offset of the first non-whitespace character at or after `from`.
fn skip_whitespace(template: &str, from: usize) -> usize {
    let rest = &template[from..];
    from + rest.len() - rest.trim_start().len()
}

fn error(offset: usize, kind: TemplateErrorKind) -> TemplateError {
    TemplateError { offset, kind }
}

/// The known path closest to an unknown one, when it is close enough to be a
/// typo: within a third of the path's length in edit distance, ties going to
/// the earlier path of [`FIELDS`]. Failing that, `contact.<name>` and
/// `attributes.<name>` are taken for attributes written the wrong way.
fn suggest(path: &str) -> Option<String> {
    let limit = (path.chars().count() / 3).max(1);
    // An attribute with a misspelt prefix, such as `contact.atributes.plan`.
    let attribute = (!path.starts_with(ATTRIBUTE_PREFIX))
        .then(|| path.rsplit_once('.'))
        .flatten()
        .filter(|(_, name)| is_attribute_name(name))
        .map(|(_, name)| format!("{ATTRIBUTE_PREFIX}{name}"));
    let closest = PATHS
        .iter()
        .copied()
        .chain(attribute.as_deref())
        .map(|candidate| (edit_distance(path, candidate), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate.to_owned());
    closest.or_else(|| {
        let name = path.strip_prefix("contact.").or_else(|| path.strip_prefix("attributes."))?;
        is_attribute_name(name).then(|| format!("{ATTRIBUTE_PREFIX}{name}"))
    })
}

/// Levenshtein distance over characters. Only error paths call it.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crm::{Company, Contact, User};

    /// A subject with every field set, and text that is not ASCII.
    fn full() -> Subject {
        let attributes = BTreeMap::from([
            ("plan".to_owned(), AttributeValue::Text("Pro".into())),
            ("seats".to_owned(), AttributeValue::Number(12.0)),
            ("discount".to_owned(), AttributeValue::Number(0.15)),
            ("vip".to_owned(), AttributeValue::Boolean(true)),
            ("churned".to_owned(), AttributeValue::Boolean(false)),
            ("blank".to_owned(), AttributeValue::Text("  ".into())),
            ("renewal-date".to_owned(), AttributeValue::Text("2025-03-01".into())),
        ]);
        Subject {
            contact: Contact {
                id: "c-1".into(),
                kind: ContactKind::Contact,
                first_name: "Zoë".into(),
                last_name: "Ångström".into(),
                email: Some("zoe@example.com".into()),
                phone: Some("+46 8 123 456".into()),
                owner_id: Some("u-7".into()),
                company_id: Some("co-3".into()),
                contact_type: "Clients".into(),
                lead_source: Some("Webinar".into()),
                sales_cycle: Some("Q3".into()),
                timezone: Some("Europe/Stockholm".into()),
                attributes,
                ..Contact::default()
            },
            owner: Some(User {
                id: "u-7".into(),
                name: "María José Ruiz".into(),
                email: "mj@example.com".into(),
                timezone: "Europe/Madrid".into(),
                signature: "María José\nStepwise".into(),
                ..User::default()
            }),
            company: Some(Company { id: "co-3".into(), name: "Nordlys AB".into(), ..Company::default() }),
        }
    }

    /// A lead with no names, no owner and no company.
    fn sparse() -> Subject {
        Subject::default()
    }

    #[track_caller]
    fn assert_renders(subject: &Subject, cases: &[(&str, &str)]) {
        for &(template, expected) in cases {
            match render(template, subject) {
                Ok(text) => assert_eq!(text, expected, "rendering {template:?}"),
                Err(e) => panic!("rendering {template:?} failed: {e}"),
            }
        }
    }

    #[test]
    fn every_known_path_renders() {
        let cases = [
            ("contact.id", "c-1"),
            ("contact.first_name", "Zoë"),
            ("contact.last_name", "Ångström"),
            ("contact.full_name", "Zoë Ångström"),
            ("contact.email", "zoe@example.com"),
            ("contact.phone", "+46 8 123 456"),
            ("contact.kind", "contact"),
            ("contact.contact_type", "Clients"),
            ("contact.lead_source", "Webinar"),
            ("contact.sales_cycle", "Q3"),
            ("contact.timezone", "Europe/Stockholm"),
            ("contact.owner_id", "u-7"),
            ("contact.company_id", "co-3"),
            ("owner.id", "u-7"),
            ("owner.name", "María José Ruiz"),
            ("owner.first_name", "María"),
            ("owner.email", "mj@example.com"),
            ("owner.timezone", "Europe/Madrid"),
            ("company.id", "co-3"),
            ("company.name", "Nordlys AB"),
            ("signature", "María José\nStepwise"),
        ];
        let mut tested: Vec<_> = cases.iter().map(|(path, _)| *path).collect();
        let mut known = known_paths().to_vec();
        tested.sort_unstable();
        known.sort_unstable();
        assert_eq!(tested, known, "every known path needs a case here");

        let subject = full();
        for (path, expected) in cases {
            for template in [format!("{{{{{path}}}}}"), format!("{{{{ {path} | \"unused\" }}}}")] {
                assert_eq!(render(&template, &subject).unwrap(), expected, "rendering {template:?}");
            }
        }
    }

    #[test]
    fn absent_values_render_their_default_or_nothing() {
        let subject = sparse();
        for &path in known_paths() {
            // A lead is always a lead: the kind is never absent.
            let (bare, defaulted) = if path == "contact.kind" { ("lead", "lead") } else { ("", "-") };
            assert_eq!(render(&format!("{{{{{path}}}}}"), &subject).unwrap(), bare, "{path}");
            assert_eq!(render(&format!("{{{{{path} | \"-\"}}}}"), &subject).unwrap(), defaulted, "{path}");
        }
    }

    #[test]
    fn missing_owner_and_company() {
        let subject = Subject { owner: None, company: None, ..full() };
        assert_renders(
            &subject,
            &[
                ("{{owner.name}}|{{owner.first_name}}|{{signature}}|{{company.name}}", "|||"),
                ("Best, {{ owner.first_name | \"the team\" }}", "Best, the team"),
                ("{{ company.name | \"your company\" }} ({{ contact.company_id }})", "your company (co-3)"),
                ("{{signature|\"--\"}}", "--"),
            ],
        );
    }

    #[test]
    fn blank_values_count_as_absent() {
        let mut subject = full();
        subject.contact.first_name = "  ".into();
        subject.contact.email = Some(String::new());
        let owner = subject.owner.as_mut().unwrap();
        owner.name = " ".into();
        owner.signature = String::new();
        assert_renders(
            &subject,
            &[
                ("Hi {{contact.first_name | \"there\"}},", "Hi there,"),
                ("{{contact.email | \"none\"}}", "none"),
                ("{{owner.first_name | \"me\"}} {{owner.name | \"me\"}}", "me me"),
                ("{{signature}}", ""),
            ],
        );
    }

    #[test]
    fn full_name_leaves_no_stray_space() {
        let named = |first: &str, last: &str| Subject {
            contact: Contact { first_name: first.into(), last_name: last.into(), ..Contact::default() },
            ..Subject::default()
        };
        let template = "[{{contact.full_name | \"?\"}}]";
        for (first, last, expected) in [
            ("Ada", "Lovelace", "[Ada Lovelace]"),
            ("Ada", "", "[Ada]"),
            ("", "Lovelace", "[Lovelace]"),
            (" Ada ", " Lovelace ", "[Ada Lovelace]"),
            ("  ", "\t", "[?]"),
        ] {
            assert_eq!(render(template, &named(first, last)).unwrap(), expected, "{first:?} {last:?}");
        }
    }

    #[test]
    fn attributes() {
        assert_renders(
            &full(),
            &[
                ("{{contact.attributes.plan}}", "Pro"),
                ("{{contact.attributes.seats}} seats", "12 seats"),
                ("{{contact.attributes.discount}}", "0.15"),
                ("{{contact.attributes.vip}}/{{contact.attributes.churned}}", "true/false"),
                ("{{contact.attributes.renewal-date}}", "2025-03-01"),
                ("{{contact.attributes.missing}}", ""),
                ("{{contact.attributes.missing | \"n/a\"}}", "n/a"),
                ("{{contact.attributes.blank | \"n/a\"}}", "n/a"),
                ("{{contact.attributes.plan | \"n/a\"}}", "Pro"),
                // Names are case-sensitive, like the map they come from.
                ("{{contact.attributes.Plan | \"n/a\"}}", "n/a"),
            ],
        );
    }

    #[test]
    fn whitespace_variants() {
        assert_renders(
            &full(),
            &[
                ("{{contact.first_name}}", "Zoë"),
                ("{{ contact.first_name }}", "Zoë"),
                ("{{   contact.first_name}}", "Zoë"),
                ("{{\tcontact.first_name\n}}", "Zoë"),
                ("{{\u{a0}contact.first_name\u{a0}}}", "Zoë"),
                ("{{owner.timezone|\"x\"}}", "Europe/Madrid"),
                ("{{contact.attributes.missing|\"x\"}}", "x"),
                ("{{ contact.attributes.missing |\"x\"}}", "x"),
                ("{{contact.attributes.missing\t|\n\"x\"\n}}", "x"),
                ("{{contact.attributes.missing | \" spaced \" }}", " spaced "),
            ],
        );
    }

    #[test]
    fn defaults_and_escapes() {
        assert_renders(
            &full(),
            &[
                (r#"{{contact.attributes.x | "say \"hi\""}}"#, r#"say "hi""#),
                (r#"{{contact.attributes.x | "back\\slash"}}"#, r"back\slash"),
                (r#"{{contact.attributes.x | "\\\""}}"#, r#"\""#),
                (r#"{{contact.attributes.x | ""}}"#, ""),
                // A default is text: tokens and pipes in it are not read.
                (r#"{{contact.attributes.x | "{{contact.id}} | }}"}}"#, "{{contact.id}} | }}"),
                (r#"{{contact.attributes.x | "¿quién? 👋"}}"#, "¿quién? 👋"),
                (r"\{{contact.first_name}}", "{{contact.first_name}}"),
                (r"\{{ not a token", "{{ not a token"),
                (r"\{{{{contact.id}}", "{{c-1"),
                // A backslash is only special right before `{{`.
                (r"a \ b \{ c \}}", r"a \ b \{ c \}}"),
                (r"\\{{contact.id}}", r"\{{contact.id}}"),
                (r"C:\path\{{contact.id}}", r"C:\path{{contact.id}}"),
            ],
        );
    }

    #[test]
    fn literal_braces_and_unicode_text() {
        assert_renders(
            &full(),
            &[
                ("", ""),
                ("no tokens at all", "no tokens at all"),
                ("{ contact.first_name }", "{ contact.first_name }"),
                ("{}", "{}"),
                ("}} and }", "}} and }"),
                ("{x}{{contact.id}}}", "{x}c-1}"),
                ("{{contact.first_name}}{{contact.last_name}}", "ZoëÅngström"),
                ("¡Hola {{contact.first_name}}! 👋 — {{company.name}}…", "¡Hola Zoë! 👋 — Nordlys AB…"),
                ("日本語{{contact.id}}日本語", "日本語c-1日本語"),
                ("line one\n{{contact.first_name}}\r\nline three", "line one\nZoë\r\nline three"),
            ],
        );
    }

    #[test]
    fn check_errors_name_the_problem_and_its_offset() {
        let cases = [
            // Unknown paths, with suggestions for likely typos.
            (
                "Hello {{contact.nickname}}",
                r#"unknown token "contact.nickname" at byte 6 (did you mean "contact.first_name"?)"#,
            ),
            ("{{ foo }}", r#"unknown token "foo" at byte 0"#),
            (
                "{{contact.firstname}}",
                r#"unknown token "contact.firstname" at byte 0 (did you mean "contact.first_name"?)"#,
            ),
            ("x {{ owner.nam }}", r#"unknown token "owner.nam" at byte 2 (did you mean "owner.name"?)"#),
            ("{{Contact.Email}}", r#"unknown token "Contact.Email" at byte 0 (did you mean "contact.email"?)"#),
            ("{{ comapny.name }}", r#"unknown token "comapny.name" at byte 0 (did you mean "company.name"?)"#),
            ("{{contact.plan}}", r#"unknown token "contact.plan" at byte 0 (did you mean "contact.phone"?)"#),
            (
                "{{contact.industry}}",
                r#"unknown token "contact.industry" at byte 0 (did you mean "contact.attributes.industry"?)"#,
            ),
            (
                "{{attributes.plan}}",
                r#"unknown token "attributes.plan" at byte 0 (did you mean "contact.attributes.plan"?)"#,
            ),
            (
                "{{contact.atributes.plan}}",
                r#"unknown token "contact.atributes.plan" at byte 0 (did you mean "contact.attributes.plan"?)"#,
            ),
            ("{{contact.attributes.}}", r#"unknown token "contact.attributes." at byte 0"#),
            ("{{contact.attributes.first name}}", r#"unknown token "contact.attributes.first name" at byte 0"#),
            (
                "{{ contact first_name }}",
                r#"unknown token "contact first_name" at byte 0 (did you mean "contact.first_name"?)"#,
            ),
            ("Grüße {{nope}}", r#"unknown token "nope" at byte 8"#),
            // Unterminated tokens.
            ("Hi {{contact.first_name", "unterminated token at byte 3 (missing `}}`)"),
            ("Hi {{contact.first_name}, bye", "unterminated token at byte 3 (missing `}}`)"),
            ("{{contact.id {{contact.email}}", "unterminated token at byte 0 (missing `}}`)"),
            ("Grüße {{", "unterminated token at byte 8 (missing `}}`)"),
            ("{{ contact.id |", "unterminated token at byte 0 (missing `}}`)"),
            (r#"{{ contact.id | "a" "#, "unterminated token at byte 0 (missing `}}`)"),
            (r#"{{ contact.id | "a" }"#, "unterminated token at byte 0 (missing `}}`)"),
            // Empty tokens.
            ("a {{ }} b", "empty token at byte 2"),
            ("{{}}", "empty token at byte 0"),
            (r#"{{ | "x" }}"#, "empty token at byte 0"),
            // Malformed defaults point into the default.
            (r#"{{ contact.first_name | "there }}"#, "malformed default at byte 24 (unterminated string)"),
            (r#"{{ contact.first_name | "there\"}}"#, "malformed default at byte 24 (unterminated string)"),
            (
                "{{ contact.first_name | there }}",
                "malformed default at byte 24 (expected a double-quoted string after `|`)",
            ),
            ("{{ contact.first_name | }}", "malformed default at byte 24 (expected a double-quoted string after `|`)"),
            (r#"{{ contact.first_name | "a" b }}"#, "malformed default at byte 28 (unexpected text after the default)"),
            (
                r#"{{ contact.first_name | "a" | "b" }}"#,
                "malformed default at byte 28 (unexpected text after the default)",
            ),
            (
                r#"{{ contact.first_name | "a\nb" }}"#,
                r#"malformed default at byte 26 (unsupported escape `\n`; only `\"` and `\\` exist)"#,
            ),
            (
                r#"{{ contact.first_name | "\é" }}"#,
                r#"malformed default at byte 25 (unsupported escape `\é`; only `\"` and `\\` exist)"#,
            ),
            // Syntax is judged before the path, and the first problem wins.
            ("{{ nope | oops }}", "malformed default at byte 10 (expected a double-quoted string after `|`)"),
            ("{{nope}} {{", r#"unknown token "nope" at byte 0"#),
        ];
        for (template, expected) in cases {
            let error = check(template).expect_err(template);
            assert_eq!(error.to_string(), expected, "checking {template:?}");
            // The three entry points agree.
            assert_eq!(tokens(template).unwrap_err(), error, "tokens of {template:?}");
            assert_eq!(render(template, &full()).unwrap_err(), error, "rendering {template:?}");
        }
    }

    #[test]
    fn error_kinds_carry_their_details() {
        assert_eq!(
            check("Hello {{contact.nickname}}"),
            Err(TemplateError {
                offset: 6,
                kind: TemplateErrorKind::UnknownToken {
                    token: "contact.nickname".into(),
                    suggestion: Some("contact.first_name".into()),
                },
            })
        );
        assert_eq!(
            check("{{ foo }}").unwrap_err().kind,
            TemplateErrorKind::UnknownToken { token: "foo".into(), suggestion: None }
        );
        assert_eq!(check("x{{").unwrap_err(), TemplateError { offset: 1, kind: TemplateErrorKind::Unterminated });
        assert_eq!(check("{{ }}").unwrap_err(), TemplateError { offset: 0, kind: TemplateErrorKind::EmptyToken });
        assert_eq!(
            check(r#"{{ signature | "x }}"#).unwrap_err(),
            TemplateError { offset: 15, kind: TemplateErrorKind::BadDefault("unterminated string".into()) }
        );
    }

    #[test]
    fn valid_templates_check() {
        for template in [
            "",
            "plain",
            "{{contact.first_name}}",
            r#"{{ contact.attributes.any_Name-1 | "x" }}"#,
            r"\{{ not a token }}",
            "{{signature}}\n--\n{{owner.email}}",
        ] {
            assert_eq!(check(template), Ok(()), "{template:?}");
        }
        for &path in known_paths() {
            assert_eq!(check(&format!("{{{{{path}}}}}")), Ok(()), "{path}");
        }
    }

    #[test]
    fn tokens_lists_paths_defaults_and_offsets() {
        let template = r#"Hi {{ contact.first_name | "there" }}, \{{skip}} from {{owner.name}}{{contact.attributes.plan|"a \"b\""}}"#;
        let token = |path: &str, default: Option<&str>, offset| Token {
            path: path.into(),
            default: default.map(Into::into),
            offset,
        };
        assert_eq!(
            tokens(template).unwrap(),
            [
                token("contact.first_name", Some("there"), 3),
                token("owner.name", None, 54),
                token("contact.attributes.plan", Some(r#"a "b""#), 68),
            ]
        );
        assert_eq!(tokens("no tokens, {single} and }}").unwrap(), []);
    }

    #[test]
    fn known_paths_are_unique_and_resolve() {
        let paths = known_paths();
        for (i, path) in paths.iter().enumerate() {
            assert!(resolve(path).is_some(), "{path}");
            assert!(!paths[i + 1..].contains(path), "{path} is listed twice");
            // Each path is its own best suggestion once misspelt.
            let typo = format!("{path}x");
            assert_eq!(suggest(&typo).as_deref(), Some(*path), "{typo}");
        }
    }

    #[test]
    fn legacy_merge_syntax() {
        for template in [
            "{!Contact.FirstName}",
            "Hi {!Lead.Email},",
            "{!User.Name}",
            "{!$User.FirstName}",
            "{!Contact.Custom_Field__c}",
            "{!x}",
            "Grüße {!Contact.FirstName} 👋",
            "{! broken then {!Contact.Id}",
            r#"{{ contact.first_name | "{!Contact.FirstName}" }}"#,
        ] {
            assert!(has_legacy_merge_syntax(template), "{template:?}");
        }
        for template in [
            "",
            "{{contact.first_name}}",
            "{!}",
            "{!.}",
            "{!$}",
            "{!1st}",
            "{! Contact.FirstName}",
            "{!Contact.FirstName",
            "{!Contact FirstName}",
            "{ !Contact.FirstName}",
            "!{Contact.FirstName}",
            "Hi! {great} news!",
            "{!",
        ] {
            assert!(!has_legacy_merge_syntax(template), "{template:?}");
        }
    }

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("Zoë", "Zoe"), 1);
    }
}
