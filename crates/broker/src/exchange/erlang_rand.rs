//! Erlang's `exs1024` random number generator (xorshift1024*), bit for bit as OTP's `rand`
//! module seeds and steps it: `rand:seed_s(exs1024, {A1, A2, A3})` then `rand:uniform_s/1`.
//!
//! RabbitMQ's consistent-hash exchange seeds one of these with a message's hash and draws from
//! it to jump between buckets, so the numbers must be exactly Erlang's, including the order in
//! which `rand` walks its state (a list it consumes from the front and refills by reversing).

const MASK_21: u64 = (1 << 21) - 1;

/// A seeded generator; [`Exs1024::uniform`] draws the next float.
///
/// Erlang keeps the 16 words as a list it consumes from the front (pushing each consumed word
/// onto a second list, which it reverses back on when the first runs out); read cyclically that
/// is one ring of 16 words whose head moves one place per draw, which is how it is kept here.
#[derive(Debug, Clone)]
pub(crate) struct Exs1024 {
    /// The state, in the order of Erlang's list when `head` is 0.
    words: [u64; 16],
    /// Where Erlang's list currently starts.
    head: usize,
}

/// One step of xorshift64*, which `rand` uses to expand a small seed into 16 words.
fn exs64_next(r: u64) -> (u64, u64) {
    let r = r ^ (r >> 12);
    let r = r ^ (r << 25);
    let r = r ^ (r >> 27);
    (r.wrapping_mul(2_685_821_657_736_338_717), r)
}

/// xorshift1024*'s step on the first two words of the list: (output, the word replacing the
/// second, which becomes the new first).
fn exs1024_calc(s0: u64, s1: u64) -> (u64, u64) {
    let s1 = s1 ^ (s1 << 31);
    let s1 = s1 ^ (s1 >> 11);
    let s0 = s0 ^ (s0 >> 30);
    let new = s0 ^ s1;
    (new.wrapping_mul(1_181_783_497_276_652_981), new)
}

impl Exs1024 {
    /// `rand:seed_s(exs1024, {A1, A2, A3})`: 21 bits of each part, scrambled by a prime, make a
    /// 64-bit seed for xorshift64*, whose first 16 outputs are the state.
    pub(crate) fn seed(parts: [u64; 3]) -> Exs1024 {
        let scramble = |a: u64, prime: u64| ((a & MASK_21) + 1).wrapping_mul(prime) & MASK_21;
        let b1 = scramble(parts[0], 2_097_131);
        let b2 = scramble(parts[1], 2_097_133);
        let b3 = scramble(parts[2], 2_097_143);
        let mut r = (b1 << 43) | (b2 << 22) | (b3 << 1) | 1;
        let mut words = [0; 16];
        // Erlang prepends each word to its list: the first one generated ends up last.
        for slot in words.iter_mut().rev() {
            let (x, next) = exs64_next(r);
            *slot = x;
            r = next;
        }
        Exs1024 { words, head: 0 }
    }

    /// The next 64-bit output.
    pub(crate) fn next_u64(&mut self) -> u64 {
        let second = (self.head + 1) % 16;
        let (out, new) = exs1024_calc(self.words[self.head], self.words[second]);
        self.words[second] = new;
        self.head = second;
        out
    }

    /// `rand:uniform_s/1` for exs1024: the output divided by 2^64, as Erlang's float division
    /// of two integers computes it (the output rounded to a double first). In `[0, 1]`.
    pub(crate) fn uniform(&mut self) -> f64 {
        self.next_u64() as f64 / 18_446_744_073_709_551_616.0
    }
}

#[cfg(test)]
mod tests {
    //! Expected values from `rand` on OTP 25.
    use super::*;

    #[test]
    fn seeding_matches_rand() {
        let s = Exs1024::seed([12345, 12345, 12345]);
        // Erlang's list, first word first.
        let erlang_list: [u64; 16] = [
            2964750782770363849,
            1880016202549063559,
            9368897662370412148,
            6667754402201606499,
            398323011368004992,
            10050111998079724245,
            10560089504567607981,
            1129212800691574833,
            3719884476298990889,
            14391374028806819996,
            42723283332859559,
            16123576460599663489,
            17717093917829682521,
            11342223099843617328,
            13987532023546362533,
            9800657766074629094,
        ];
        assert_eq!((s.words, s.head), (erlang_list, 0));
    }

    /// 40 draws: more than the 16 words of state, so Erlang's refill of its list is covered.
    #[test]
    fn uniform_draws_match_rand() {
        let expected = [
            0.03752283610347342,
            0.850707804988891,
            0.7737435292711335,
            0.6778453654327831,
            0.34947641240724303,
            0.3665984579657339,
            0.29393444318712614,
            0.25974327673615577,
            0.3348476349346712,
            0.5907453534964484,
            0.7837320654656127,
            0.4971876550309457,
            0.7662196701677891,
            0.5897083691314007,
            0.8592216179122686,
            0.8640792339821974,
            0.34274156129633143,
            0.0396279496231324,
            0.09197780877111755,
            0.41915655662281237,
            0.014242671987924034,
            0.116333044965979,
            0.9219230083508104,
            0.8180455602766332,
            0.24171406642380103,
            0.954400095122024,
            0.2589604345299979,
            0.8345606450366359,
            0.3404823928477045,
            0.5367406603519792,
            0.6929958024203234,
            0.9620856069153805,
            0.3585598102321839,
            0.7733715299865118,
            0.0361376354521374,
            0.8147453407550519,
            0.9982541251720228,
            0.3536564446389977,
            0.9907434339786586,
            0.21302329554675367,
        ];
        let mut s = Exs1024::seed([12345, 12345, 12345]);
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(s.uniform(), *want, "draw {i}");
        }
    }
}
