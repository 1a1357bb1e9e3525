//! JSON texts of one shape kept compressed: the watch caches' objects of a kind
//! (`engine::cache`) and the items of an identity API's list (`identity::lists`).
//!
//! Such texts are alike: the same keys, often the same values. LZ4 with one of them as the
//! dictionary keeps each in a small part of its size (a reconciled IdentityBackend: 106 of
//! 1,070 bytes); what is left is mostly names, ids and timestamps. A text packed before there
//! was a dictionary is compressed alone.

use lz4_flex::block::{
    compress_prepend_size, compress_prepend_size_with_dict, decompress_size_prepended,
    decompress_size_prepended_with_dict,
};

/// Packs texts against its dictionary, the first text offered as one; the dictionary never
/// changes after, so that every text packed against it can be unpacked.
#[derive(Default)]
pub struct Packer {
    dictionary: Option<Box<[u8]>>,
}

/// One packed text.
pub struct Packed {
    against_dictionary: bool,
    bytes: Box<[u8]>,
}

impl Packer {
    /// Packs `text`, taking it as the dictionary when there is none yet and `typical` (a text
    /// like the others will be: a reconciled object, not one without a status yet).
    pub fn pack(&mut self, text: &[u8], typical: bool) -> Packed {
        if self.dictionary.is_none() && typical {
            self.dictionary = Some(text.into());
        }
        match &self.dictionary {
            Some(dict) => Packed {
                against_dictionary: true,
                bytes: compress_prepend_size_with_dict(text, dict).into(),
            },
            None => Packed {
                against_dictionary: false,
                bytes: compress_prepend_size(text).into(),
            },
        }
    }

    /// The text `packed` was packed from; it was packed by this packer, so this fails only if
    /// memory was corrupted.
    pub fn unpack(&self, packed: &Packed) -> Result<Vec<u8>, serde_json::Error> {
        match (&self.dictionary, packed.against_dictionary) {
            (Some(dict), true) => decompress_size_prepended_with_dict(&packed.bytes, dict),
            _ => decompress_size_prepended(&packed.bytes),
        }
        .map_err(|e| serde::de::Error::custom(format!("a packed text does not unpack: {e}")))
    }

    /// Unpacks and decodes `packed`.
    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        packed: &Packed,
    ) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.unpack(packed)?)
    }
}

impl Packed {
    /// Bytes kept.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(i: u32) -> String {
        format!(
            r#"{{"id":"{i:08x}-b148-4035-95bc-c32ff7f7ae41","name":"Backend {i}","type":"Internal","isDefault":false,"passwordHashingAlg":"argon2","smtpPort":2525,"createDefaultOrganization":false,"metadataFields":[],"createdAt":"2026-12-02T16:06:{:02}Z"}}"#,
            i % 60
        )
    }

    #[test]
    fn texts_pack_small_against_the_first_typical_one_and_unpack_whole() {
        let mut packer = Packer::default();
        let alone = packer.pack(b"{\"spec\":{}}", false);
        let first = packer.pack(text(1).as_bytes(), true);
        let later = packer.pack(text(2).as_bytes(), true);
        assert!(!alone.against_dictionary && first.against_dictionary);
        assert!(later.len() * 4 < text(2).len(), "{} bytes", later.len());
        assert_eq!(packer.unpack(&alone).unwrap(), b"{\"spec\":{}}");
        assert_eq!(packer.unpack(&first).unwrap(), text(1).as_bytes());
        assert_eq!(packer.unpack(&later).unwrap(), text(2).as_bytes());
        let decoded: serde_json::Value = packer.decode(&later).unwrap();
        assert_eq!(decoded["name"], "Backend 2");
    }

    #[test]
    fn a_text_of_another_packer_is_an_error_not_a_panic() {
        let mut a = Packer::default();
        a.pack(text(1).as_bytes(), true);
        let packed = a.pack(text(2).as_bytes(), true);
        let truncated = Packed {
            against_dictionary: false,
            bytes: packed.bytes[..packed.len() / 2].into(),
        };
        assert!(Packer::default().unpack(&truncated).is_err());
    }
}
