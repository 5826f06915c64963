//! Server-generated names for queues and consumer tags.

use warren_message::ShortStr;

/// A server-generated name: `prefix` and 22 URL-safe random characters, as RabbitMQ makes them.
pub fn generated_name(prefix: &str) -> ShortStr {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let mut name = String::with_capacity(prefix.len() + 22);
    name.push_str(prefix);
    for _ in 0..22 {
        name.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    ShortStr::from(name)
}
