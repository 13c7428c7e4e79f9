//! The /opt tree of a function: its layers unpacked one over the other, in order
//! (a later layer's file replaces an earlier one's, as in Lambda), once per ordered
//! list of layer bundles, in the unpacked-code cache ([`crate::unpacked`]) under a
//! key of its own. Also the size rule for code plus layers.

use super::LayerError;
use crate::code::CodeError;
use crate::limits::CODE_UNZIPPED_MAX;
use crate::store::layers::LayerRef;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Prefix of an /opt tree's key in the unpacked-code cache (bundle keys are bare
/// sha256 hex, so the two never collide).
pub const KEY_PREFIX: &str = "opt-";

/// The cache key of the tree of `layers`: a hash of their bundles' hashes in order
/// (the same bundles in another order make another tree).
pub fn tree_key(layers: &[LayerRef]) -> String {
    let mut h = Sha256::new();
    for l in layers {
        h.update(l.sha256.as_bytes());
        h.update(b"\n");
    }
    format!("{KEY_PREFIX}{}", hex::encode(h.finalize()))
}

/// Unpacks the zips `read` returns for each layer into `dir`, in order, each over
/// the ones before.
pub fn fill(
    dir: &Path,
    layers: &[LayerRef],
    mut read: impl FnMut(&LayerRef) -> Result<Vec<u8>, CodeError>,
) -> Result<(), CodeError> {
    for l in layers {
        let zip = read(l)?;
        crate::unpacked::unzip::unzip_over(&zip, dir).map_err(crate::unpacked::unzip_error)?;
    }
    Ok(())
}

/// Lambda's rule: the function's code and all its layers unpacked fit in 250 MB.
pub fn check_total(code_unzipped: u64, layers: &[LayerRef]) -> Result<(), LayerError> {
    let total = layers
        .iter()
        .fold(code_unzipped, |t, l| t.saturating_add(l.unpacked_size));
    if total > CODE_UNZIPPED_MAX {
        return Err(LayerError::TooLarge { total });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::code::tests::make_zip;

    fn layer(sha: &str, unpacked_size: u64) -> LayerRef {
        LayerRef {
            name: format!("l{sha}"),
            version: 1,
            sha256: sha.into(),
            code_size: 1,
            unpacked_size,
        }
    }

    #[test]
    fn the_key_depends_on_the_order() {
        let (a, b) = (layer("aa", 1), layer("bb", 1));
        let ab = tree_key(&[a.clone(), b.clone()]);
        assert!(ab.starts_with(KEY_PREFIX) && ab.len() == KEY_PREFIX.len() + 64);
        assert_ne!(ab, tree_key(&[b.clone(), a.clone()]));
        assert_eq!(ab, tree_key(&[a, b]));
    }

    #[test]
    fn later_layers_win() {
        let dir = tempfile::tempdir().unwrap();
        let zips = [
            make_zip(&[("python/m.py", b"v = 1\n", None)]),
            make_zip(&[("python/m.py", b"v = 2\n", None)]),
        ];
        let layers = [layer("0", 6), layer("1", 6)];
        fill(dir.path(), &layers, |l| {
            Ok(zips[l.sha256.parse::<usize>().unwrap()].clone())
        })
        .unwrap();
        let got = std::fs::read_to_string(dir.path().join("python/m.py")).unwrap();
        assert_eq!(got, "v = 2\n");
    }

    #[test]
    fn code_and_layers_share_250_mb() {
        let max = CODE_UNZIPPED_MAX;
        assert!(check_total(max - 10, &[layer("a", 10)]).is_ok());
        let e = check_total(max - 10, &[layer("a", 6), layer("b", 5)]).unwrap_err();
        assert!(matches!(e, LayerError::TooLarge { total } if total == max + 1));
        assert_eq!(
            e.to_string(),
            format!(
                "Function code combined with layers exceeds the maximum allowed size of \
                 {max} bytes. The actual size is {} bytes.",
                max + 1
            )
        );
    }
}
