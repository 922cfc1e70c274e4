//! The fields a criterion can read, and reading them from a subject.

use stepwise_plugin_sdk::{AttributeValue, ContactKind, Subject};

/// A field of the contact, of its company, or one of its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// `first_name`.
    FirstName,
    /// `last_name`.
    LastName,
    /// `email`.
    Email,
    /// `phone`.
    Phone,
    /// `kind`: `lead` or `contact`.
    Kind,
    /// `contact_type`.
    ContactType,
    /// `lead_source`.
    LeadSource,
    /// `sales_cycle`.
    SalesCycle,
    /// `timezone`.
    Timezone,
    /// `owner_id`.
    OwnerId,
    /// `company_id`.
    CompanyId,
    /// `last_engaged`: a time.
    LastEngaged,
    /// `last_contacted`: a time.
    LastContacted,
    /// `opt_outs.email`: a flag.
    OptOutEmail,
    /// `opt_outs.sms`: a flag.
    OptOutSms,
    /// `opt_outs.phone`: a flag.
    OptOutPhone,
    /// `company.name`.
    CompanyName,
    /// `company.owner_id`.
    CompanyOwnerId,
    /// `company.parent_id`.
    CompanyParentId,
    /// `attributes.<name>`: text, a number or a flag, known only when read.
    Attribute(String),
}

/// What a field holds, as far as it is known before a contact is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Text.
    Text,
    /// `lead` or `contact`.
    Kind,
    /// A point in time.
    Time,
    /// True or false.
    Flag,
    /// An attribute: text, a number or a flag.
    Attribute,
}

/// A field's value in one subject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Found<'a> {
    /// Absent, or blank text.
    Missing,
    /// Text, not blank.
    Text(&'a str),
    /// A number.
    Number(f64),
    /// A flag.
    Flag(bool),
    /// A time, in milliseconds since the Unix epoch.
    Time(i64),
}

/// The named fields, in the order the README and error messages list them.
const NAMED: [(&str, Field); 19] = [
    ("first_name", Field::FirstName),
    ("last_name", Field::LastName),
    ("email", Field::Email),
    ("phone", Field::Phone),
    ("kind", Field::Kind),
    ("contact_type", Field::ContactType),
    ("lead_source", Field::LeadSource),
    ("sales_cycle", Field::SalesCycle),
    ("timezone", Field::Timezone),
    ("owner_id", Field::OwnerId),
    ("company_id", Field::CompanyId),
    ("last_engaged", Field::LastEngaged),
    ("last_contacted", Field::LastContacted),
    ("opt_outs.email", Field::OptOutEmail),
    ("opt_outs.sms", Field::OptOutSms),
    ("opt_outs.phone", Field::OptOutPhone),
    ("company.name", Field::CompanyName),
    ("company.owner_id", Field::CompanyOwnerId),
    ("company.parent_id", Field::CompanyParentId),
];

/// The prefix of attribute fields.
const ATTRIBUTES: &str = "attributes.";

impl Field {
    /// Parses a field name such as `lead_source`, `company.name` or
    /// `attributes.plan`.
    ///
    /// # Errors
    ///
    /// A message for people naming what is wrong.
    pub fn parse(name: &str) -> Result<Field, String> {
        if let Some(attribute) = name.strip_prefix(ATTRIBUTES) {
            return if attribute.trim().is_empty() {
                Err("names no attribute: write `attributes.<name>`, such as `attributes.plan`".to_owned())
            } else if attribute.trim() != attribute {
                Err(format!("the attribute name `{attribute}` has leading or trailing spaces"))
            } else {
                Ok(Field::Attribute(attribute.to_owned()))
            };
        }
        NAMED.iter().find(|(n, _)| *n == name).map(|(_, field)| field.clone()).ok_or_else(|| {
            let names: Vec<&str> = NAMED.iter().map(|(n, _)| *n).collect();
            format!("unknown field `{name}`; the fields are {} and attributes.<name>", names.join(", "))
        })
    }

    /// The field's name as a config writes it.
    pub fn name(&self) -> String {
        match self {
            Field::Attribute(name) => format!("{ATTRIBUTES}{name}"),
            named => NAMED.iter().find(|(_, f)| f == named).map_or_else(String::new, |(n, _)| (*n).to_owned()),
        }
    }

    /// What the field holds.
    pub fn ty(&self) -> Type {
        match self {
            Field::Kind => Type::Kind,
            Field::LastEngaged | Field::LastContacted => Type::Time,
            Field::OptOutEmail | Field::OptOutSms | Field::OptOutPhone => Type::Flag,
            Field::Attribute(_) => Type::Attribute,
            _ => Type::Text,
        }
    }

    /// The field's value in `subject`. Absent values and blank text (empty
    /// or only spaces) are [`Found::Missing`]; so is every company field of
    /// a contact without a company.
    pub fn read<'a>(&self, subject: &'a Subject) -> Found<'a> {
        let contact = &subject.contact;
        let company = subject.company.as_ref();
        match self {
            Field::FirstName => text(Some(&contact.first_name)),
            Field::LastName => text(Some(&contact.last_name)),
            Field::Email => text(contact.email.as_ref()),
            Field::Phone => text(contact.phone.as_ref()),
            Field::Kind => Found::Text(match contact.kind {
                ContactKind::Lead => "lead",
                ContactKind::Contact => "contact",
            }),
            Field::ContactType => text(Some(&contact.contact_type)),
            Field::LeadSource => text(contact.lead_source.as_ref()),
            Field::SalesCycle => text(contact.sales_cycle.as_ref()),
            Field::Timezone => text(contact.timezone.as_ref()),
            Field::OwnerId => text(contact.owner_id.as_ref()),
            Field::CompanyId => text(contact.company_id.as_ref()),
            Field::LastEngaged => contact.last_engaged.map_or(Found::Missing, Found::Time),
            Field::LastContacted => contact.last_contacted.map_or(Found::Missing, Found::Time),
            Field::OptOutEmail => Found::Flag(contact.opt_outs.email),
            Field::OptOutSms => Found::Flag(contact.opt_outs.sms),
            Field::OptOutPhone => Found::Flag(contact.opt_outs.phone),
            Field::CompanyName => text(company.map(|c| &c.name)),
            Field::CompanyOwnerId => text(company.and_then(|c| c.owner_id.as_ref())),
            Field::CompanyParentId => text(company.and_then(|c| c.parent_id.as_ref())),
            Field::Attribute(name) => match contact.attributes.iter().find(|a| a.name == *name).map(|a| &a.value) {
                None => Found::Missing,
                Some(AttributeValue::Text(value)) => text(Some(value)),
                Some(AttributeValue::Number(n)) => Found::Number(*n),
                Some(AttributeValue::Boolean(b)) => Found::Flag(*b),
            },
        }
    }
}

/// Text, or missing when absent or blank.
fn text(value: Option<&String>) -> Found<'_> {
    match value {
        Some(value) if !value.trim().is_empty() => Found::Text(value),
        _ => Found::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{ada, attribute};
    use stepwise_plugin_sdk::{AttributeValue, Company};

    #[test]
    fn every_named_field_parses_and_names_itself() {
        for (name, field) in NAMED {
            assert_eq!(Field::parse(name), Ok(field.clone()));
            assert_eq!(field.name(), name);
        }
        assert_eq!(Field::parse("attributes.plan"), Ok(Field::Attribute("plan".into())));
        assert_eq!(Field::Attribute("plan".into()).name(), "attributes.plan");
        assert_eq!(Field::parse("attributes.a.b"), Ok(Field::Attribute("a.b".into())), "names may hold dots");
    }

    #[test]
    fn unknown_and_blank_names_are_explained() {
        let error = Field::parse("firstname").unwrap_err();
        assert!(error.starts_with("unknown field `firstname`; the fields are first_name, last_name,"), "{error}");
        assert!(error.ends_with("company.parent_id and attributes.<name>"), "{error}");
        assert!(Field::parse("First_Name").is_err(), "names are exact");
        assert!(Field::parse("attributes.").unwrap_err().contains("names no attribute"));
        assert!(Field::parse("attributes. plan").unwrap_err().contains("leading or trailing spaces"));
        assert!(Field::parse("").is_err());
    }

    #[test]
    fn types_are_known_before_reading() {
        assert_eq!(Field::FirstName.ty(), Type::Text);
        assert_eq!(Field::CompanyName.ty(), Type::Text);
        assert_eq!(Field::Kind.ty(), Type::Kind);
        assert_eq!(Field::LastContacted.ty(), Type::Time);
        assert_eq!(Field::OptOutSms.ty(), Type::Flag);
        assert_eq!(Field::Attribute("x".into()).ty(), Type::Attribute);
    }

    #[test]
    fn reads_the_contact_its_company_and_attributes() {
        let mut subject = ada();
        subject.contact.last_engaged = Some(1_000);
        subject.contact.opt_outs.sms = true;
        subject.contact.attributes = vec![
            attribute("plan", AttributeValue::Text("pro".into())),
            attribute("seats", AttributeValue::Number(12.0)),
        ];
        subject.company = Some(Company {
            id: "com_1".into(),
            name: "Analytical Engines".into(),
            owner_id: None,
            parent_id: Some("com_0".into()),
        });
        assert_eq!(Field::FirstName.read(&subject), Found::Text("Ada"));
        assert_eq!(Field::Kind.read(&subject), Found::Text("contact"));
        assert_eq!(Field::LastEngaged.read(&subject), Found::Time(1_000));
        assert_eq!(Field::LastContacted.read(&subject), Found::Missing);
        assert_eq!(Field::OptOutSms.read(&subject), Found::Flag(true));
        assert_eq!(Field::OptOutEmail.read(&subject), Found::Flag(false));
        assert_eq!(Field::CompanyName.read(&subject), Found::Text("Analytical Engines"));
        assert_eq!(Field::CompanyOwnerId.read(&subject), Found::Missing);
        assert_eq!(Field::CompanyParentId.read(&subject), Found::Text("com_0"));
        assert_eq!(Field::Attribute("plan".into()).read(&subject), Found::Text("pro"));
        assert_eq!(Field::Attribute("seats".into()).read(&subject), Found::Number(12.0));
        assert_eq!(Field::Attribute("Plan".into()).read(&subject), Found::Missing, "attribute names are exact");
    }

    #[test]
    fn blank_text_and_a_missing_company_are_missing() {
        let mut subject = ada();
        subject.contact.last_name = "  ".into();
        subject.contact.lead_source = Some(String::new());
        subject.contact.attributes = vec![attribute("note", AttributeValue::Text(" ".into()))];
        assert_eq!(Field::LastName.read(&subject), Found::Missing);
        assert_eq!(Field::LeadSource.read(&subject), Found::Missing);
        assert_eq!(Field::SalesCycle.read(&subject), Found::Missing);
        assert_eq!(Field::Attribute("note".into()).read(&subject), Found::Missing);
        assert_eq!(Field::CompanyName.read(&subject), Found::Missing);
    }
}
