//! The user name a verified client certificate gives SASL EXTERNAL: its common name, its whole
//! subject (formatted as RabbitMQ's rabbit_cert_info does, so names carry over), or one of its
//! subject alternative names.

use std::net::IpAddr;

use x509_parser::asn1_rs::{Any, FromDer, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use super::settings::{CertLogin, SanType};

/// The user name in the DER certificate `der`, read as `how` says; None when the certificate
/// has no such name (or cannot be parsed: it was verified, so that does not happen).
pub fn login_name(der: &[u8], how: CertLogin) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    match how {
        CertLogin::CommonName => {
            // Several CNs are joined, as RabbitMQ does.
            let names: Vec<String> = cert.subject().iter_common_name().filter_map(attribute_text).collect();
            (!names.is_empty()).then(|| names.join(","))
        }
        CertLogin::DistinguishedName => Some(distinguished_name(cert.subject())),
        CertLogin::SubjectAlternativeName { san_type, index } => {
            let san = cert.subject_alternative_name().ok()??;
            san.value.general_names.iter().filter_map(|name| san_text(name, san_type)).nth(index)
        }
    }
}

/// A subject alternative name's text, if it is of the type asked for.
fn san_text(name: &GeneralName<'_>, wanted: SanType) -> Option<String> {
    match (name, wanted) {
        (GeneralName::DNSName(s), SanType::Dns)
        | (GeneralName::RFC822Name(s), SanType::Email)
        | (GeneralName::URI(s), SanType::Uri) => Some((*s).to_owned()),
        (GeneralName::IPAddress(bytes), SanType::Ip) => ip_text(bytes),
        // Its value is [0] EXPLICIT ANY; RabbitMQ reads it as a directory string.
        (GeneralName::OtherName(_, value), SanType::OtherName) => {
            let (_, explicit) = Any::from_der(value).ok()?;
            let (_, inner) = Any::from_der(explicit.data).ok()?;
            string_value(inner.tag(), inner.data)
        }
        _ => None,
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

fn attribute_text(attribute: &AttributeTypeAndValue<'_>) -> Option<String> {
    let value = attribute.attr_value();
    string_value(value.tag(), value.data)
}

/// The text of an ASN.1 string of any of the types a directory string may be.
fn string_value(tag: Tag, data: &[u8]) -> Option<String> {
    match tag {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString
        | Tag::GeneralString
        | Tag::GraphicString => String::from_utf8(data.to_vec()).ok(),
        // Taken as Latin-1, as most software does.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// The subject as RabbitMQ writes it: RFC 4514, most significant part last
/// (`CN=alice,OU=ops,O=Example,C=GB`), multi-valued parts joined with "+".
fn distinguished_name(name: &X509Name<'_>) -> String {
    let parts: Vec<String> =
        name.iter().map(|rdn| rdn.iter().map(format_attribute).collect::<Vec<_>>().join("+")).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn format_attribute(attribute: &AttributeTypeAndValue<'_>) -> String {
    let oid = attribute.attr_type().to_id_string();
    let label = short_name(&oid).map_or(oid.clone(), str::to_owned);
    let value = attribute_text(attribute).unwrap_or_else(|| hex(attribute.attr_value().data));
    format!("{label}={}", escape_value(&value))
}

/// The attribute labels RabbitMQ uses; others are written as their dotted OID.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "TITLE",
        "2.5.4.42" => "GIVENNAME",
        "2.5.4.43" => "INITIALS",
        "2.5.4.44" => "GENERATIONQUALIFIER",
        "2.5.4.65" => "PSEUDONYM",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "EMAILADDRESS",
        _ => return None,
    })
}

fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("#{digits}")
}

/// RFC 4514 escaping as RabbitMQ does it: a leading space or "#", a trailing space and
/// `"+,;<>\` get a backslash; bytes outside printable ASCII are written as `\XX` (each byte of
/// their UTF-8 encoding).
fn escape_value(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    for (i, &b) in bytes.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == bytes.len();
        match b {
            b' ' | b'#' if first => {
                out.push('\\');
                out.push(b as char);
            }
            b' ' if last => out.push_str("\\ "),
            b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            b if !(32..126).contains(&b) => out.push_str(&format!("\\{b:02X}")),
            b => out.push(b as char),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rcgen::{string::Ia5String, CertificateParams, DistinguishedName, DnType, KeyPair, SanType as Rc};

    use super::*;

    fn certificate(subject: &[(DnType, &str)], sans: Vec<Rc>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (kind, value) in subject {
            dn.push(kind.clone(), *value);
        }
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.self_signed(&KeyPair::generate().unwrap()).unwrap().der().to_vec()
    }

    fn ia5(s: &str) -> Ia5String {
        Ia5String::try_from(s).unwrap()
    }

    #[test]
    fn the_common_name_is_the_default_login() {
        let der =
            certificate(&[(DnType::OrganizationName, "Example"), (DnType::CommonName, "alice")], vec![]);
        assert_eq!(login_name(&der, CertLogin::CommonName).as_deref(), Some("alice"));
        let none = certificate(&[(DnType::OrganizationName, "Example")], vec![]);
        assert_eq!(login_name(&none, CertLogin::CommonName), None);
    }

    #[test]
    fn the_distinguished_name_reads_as_rabbitmqs() {
        let der = certificate(
            &[
                (DnType::CountryName, "GB"),
                (DnType::OrganizationName, "Example, Ltd"),
                (DnType::CommonName, " alice"),
            ],
            vec![],
        );
        assert_eq!(
            login_name(&der, CertLogin::DistinguishedName).as_deref(),
            Some("CN=\\ alice,O=Example\\, Ltd,C=GB")
        );
    }

    #[test]
    fn a_subject_alternative_name_by_type_and_index() {
        let der = certificate(
            &[(DnType::CommonName, "ignored")],
            vec![
                Rc::DnsName(ia5("first.example")),
                Rc::Rfc822Name(ia5("bob@example.com")),
                Rc::DnsName(ia5("second.example")),
                Rc::URI(ia5("spiffe://example/bob")),
                Rc::IpAddress("10.1.2.3".parse().unwrap()),
                Rc::OtherName((vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3], "bob@corp".into())),
            ],
        );
        let san = |san_type, index| login_name(&der, CertLogin::SubjectAlternativeName { san_type, index });
        assert_eq!(san(SanType::Dns, 0).as_deref(), Some("first.example"));
        assert_eq!(san(SanType::Dns, 1).as_deref(), Some("second.example"));
        assert_eq!(san(SanType::Dns, 2), None);
        assert_eq!(san(SanType::Email, 0).as_deref(), Some("bob@example.com"));
        assert_eq!(san(SanType::Uri, 0).as_deref(), Some("spiffe://example/bob"));
        assert_eq!(san(SanType::Ip, 0).as_deref(), Some("10.1.2.3"));
        assert_eq!(san(SanType::OtherName, 0).as_deref(), Some("bob@corp"));
    }

    #[test]
    fn escaping_follows_rfc_4514_as_rabbitmq() {
        assert_eq!(escape_value("#a b "), "\\#a b\\ ");
        assert_eq!(escape_value("a+b;c<d>\"e\\"), "a\\+b\\;c\\<d\\>\\\"e\\\\");
        assert_eq!(escape_value("é~"), "\\C3\\A9\\7E");
    }
}
