//! Checks on names, tags and free text.

use super::error::FeatureError;
use super::limits::{MAX_DESCRIPTION_BYTES, MAX_NAME_BYTES, MAX_OWNER_BYTES, MAX_TAGS};

/// A group or feature name: 1..=63 bytes of `[a-z0-9_]`, starting with a letter.
/// `what` is "group" or "feature".
pub fn check_name(what: &'static str, name: &str) -> Result<(), FeatureError> {
    let invalid = |reason: String| FeatureError::InvalidName {
        what,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(invalid(format!(
            "must be 1 to {MAX_NAME_BYTES} bytes, is {}",
            name.len()
        )));
    }
    if !name.as_bytes()[0].is_ascii_lowercase() {
        return Err(invalid("must start with a letter a-z".to_string()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_'))
    {
        return Err(invalid(format!(
            "character {bad:?} is not one of [a-z0-9_]"
        )));
    }
    Ok(())
}

/// Tags: at most [`MAX_TAGS`], each 1..=63 bytes of printable ASCII without spaces
/// (e.g. "pii", "team:ads"), no duplicates.
pub fn check_tags(owner_what: &str, tags: &[String]) -> Result<(), FeatureError> {
    if tags.len() > MAX_TAGS {
        return Err(FeatureError::TooManyTags {
            what: owner_what.to_string(),
            count: tags.len(),
            max: MAX_TAGS,
        });
    }
    for (i, tag) in tags.iter().enumerate() {
        let invalid = |reason: String| FeatureError::InvalidTag {
            tag: tag.clone(),
            reason,
        };
        if tag.is_empty() || tag.len() > MAX_NAME_BYTES {
            return Err(invalid(format!(
                "must be 1 to {MAX_NAME_BYTES} bytes, is {}",
                tag.len()
            )));
        }
        if !tag.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "must be printable ASCII without spaces".to_string(),
            ));
        }
        if tags[..i].contains(tag) {
            return Err(invalid(format!("appears twice on {owner_what}")));
        }
    }
    Ok(())
}

pub fn check_description(owner_what: &str, text: &str) -> Result<(), FeatureError> {
    check_text(
        format!("description of {owner_what}"),
        text,
        MAX_DESCRIPTION_BYTES,
    )
}

pub fn check_owner(owner_what: &str, text: &str) -> Result<(), FeatureError> {
    check_text(format!("owner of {owner_what}"), text, MAX_OWNER_BYTES)
}

fn check_text(what: String, text: &str, max: usize) -> Result<(), FeatureError> {
    if text.len() > max {
        return Err(FeatureError::TextTooLong {
            what,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["user", "ctr_7d", "a", &"a".repeat(63)] {
            check_name("feature", ok).unwrap();
        }
        for bad in ["", "7d", "_x", "User", "a-b", "a b", "é", &"a".repeat(64)] {
            assert!(
                matches!(
                    check_name("feature", bad),
                    Err(FeatureError::InvalidName { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn tags() {
        check_tags("group 'g'", &["pii".into(), "team:ads".into()]).unwrap();
        assert!(check_tags("g", &["a b".into()]).is_err());
        assert!(check_tags("g", &["".into()]).is_err());
        assert!(check_tags("g", &["x".into(), "x".into()]).is_err());
        let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
        assert!(matches!(
            check_tags("g", &many),
            Err(FeatureError::TooManyTags {
                count: 33,
                max: 32,
                ..
            })
        ));
    }
}
