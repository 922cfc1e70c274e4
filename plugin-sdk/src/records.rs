//! Helpers on the records a plugin reads: how a contact is named and
//! reached.

use crate::{Channel, Contact};

impl Contact {
    /// The contact's first and last name, each trimmed; `None` when both
    /// are blank.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::Contact;
    /// # fn named(contact: &Contact) -> String {
    /// contact.full_name().unwrap_or_else(|| "someone".into())
    /// # }
    /// ```
    pub fn full_name(&self) -> Option<String> {
        let name = format!("{} {}", self.first_name.trim(), self.last_name.trim());
        let name = name.trim();
        (!name.is_empty()).then(|| name.to_owned())
    }

    /// Where the contact is reached on `channel`: its email address for
    /// email, its phone number for text messages and calls; trimmed, and
    /// `None` when absent or blank.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::{Channel, Contact};
    /// # fn texts(contact: &Contact) -> bool {
    /// contact.address(Channel::Sms).is_some()
    /// # }
    /// ```
    pub fn address(&self, channel: Channel) -> Option<&str> {
        let address = match channel {
            Channel::Email => &self.email,
            Channel::Sms | Channel::Phone => &self.phone,
        };
        address.as_deref().map(str::trim).filter(|a| !a.is_empty())
    }

    /// How people are shown the contact, as in a to-do item's title: its
    /// [full name](Contact::full_name); without one, its
    /// [address](Contact::address) on the first of `fallbacks` it has one
    /// for; else `the contact`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use stepwise_plugin_sdk::{Channel, Contact, EngageItem};
    /// # fn item(contact: &Contact) -> EngageItem {
    /// // `Call Ada Lovelace`, or `Call +15550100` for a contact without a name.
    /// EngageItem::new(format!("Call {}", contact.display_name(&[Channel::Phone])))
    /// # }
    /// ```
    pub fn display_name(&self, fallbacks: &[Channel]) -> String {
        self.full_name().unwrap_or_else(|| {
            fallbacks.iter().find_map(|&channel| self.address(channel)).unwrap_or("the contact").to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::fixtures;
    use crate::{Channel, Contact};

    fn nameless(email: Option<&str>, phone: Option<&str>) -> Contact {
        Contact {
            first_name: " ".into(),
            last_name: String::new(),
            email: email.map(str::to_owned),
            phone: phone.map(str::to_owned),
            ..fixtures::contact()
        }
    }

    #[test]
    fn the_full_name_trims_each_part() {
        let contact = Contact { first_name: " Ada ".into(), last_name: "Lovelace  ".into(), ..fixtures::contact() };
        assert_eq!(contact.full_name().as_deref(), Some("Ada Lovelace"));
        let contact = Contact { first_name: " ".into(), last_name: " Lovelace".into(), ..fixtures::contact() };
        assert_eq!(contact.full_name().as_deref(), Some("Lovelace"));
        assert_eq!(nameless(None, None).full_name(), None);
    }

    #[test]
    fn addresses_are_trimmed_and_blank_ones_are_none() {
        let contact = nameless(Some(" ada@example.com "), Some("  "));
        assert_eq!(contact.address(Channel::Email), Some("ada@example.com"));
        assert_eq!(contact.address(Channel::Sms), None);
        assert_eq!(contact.address(Channel::Phone), None);
        let contact = nameless(None, Some("+15550100 "));
        assert_eq!(contact.address(Channel::Email), None);
        assert_eq!(contact.address(Channel::Sms), Some("+15550100"));
        assert_eq!(contact.address(Channel::Phone), Some("+15550100"));
    }

    #[test]
    fn a_nameless_contact_is_named_by_the_first_address_it_has() {
        assert_eq!(fixtures::contact().display_name(&[Channel::Phone]), "Ada Lovelace");
        let both = nameless(Some("ada@example.com"), Some("+15550100"));
        assert_eq!(both.display_name(&[Channel::Phone]), "+15550100");
        assert_eq!(both.display_name(&[Channel::Email, Channel::Phone]), "ada@example.com");
        let phone_only = nameless(Some(" "), Some("+15550100"));
        assert_eq!(phone_only.display_name(&[Channel::Email, Channel::Phone]), "+15550100");
        assert_eq!(phone_only.display_name(&[Channel::Email]), "the contact");
        assert_eq!(phone_only.display_name(&[]), "the contact");
    }
}
