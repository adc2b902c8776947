//! ImageNet-1k's class ids: the 1000 WordNet ids (`n01440764`, how ImageNet's own folders, and
//! Imagenette's, name the classes) in output order, which is their sorted order — torchvision's
//! and timm's ImageNet-1k models all index their classes so. Shipped beside the class names
//! (`assets/models/imagenet_wnids.txt`, made from timm's list by `make_wnids.py`).

/// Outputs of an ImageNet-1k classifier.
pub const CLASSES: usize = 1000;

use std::sync::LazyLock;

/// The WordNet ids, one a line, in output order.
const WNIDS: &str = include_str!("../../assets/models/imagenet_wnids.txt");

/// `WNIDS` as a list: sorted (`make_wnids.py` checks), so searched by bisection.
static IDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| WNIDS.lines().collect());

/// The WordNet id of output `index` (below `CLASSES`).
#[must_use]
pub fn wnid(index: usize) -> Option<&'static str> {
    IDS.get(index).copied()
}

/// The output of WordNet id `id` (any case), if it is one of ImageNet-1k's.
#[must_use]
pub fn wnid_index(id: &str) -> Option<usize> {
    IDS.binary_search(&id.to_ascii_lowercase().as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ids_are_imagenets_in_output_order() {
        assert_eq!(IDS.len(), CLASSES);
        assert!(IDS.windows(2).all(|w| w[0] < w[1]), "sorted, each once");
        // Output 0 is the tench, 281 the tabby, 999 toilet tissue (torchvision's names).
        assert_eq!(wnid(0), Some("n01440764"));
        assert_eq!(wnid(281), Some("n02123045"));
        assert_eq!(wnid(999), Some("n15075141"));
        assert_eq!(wnid(1000), None);
        assert_eq!(wnid_index("n02123045"), Some(281));
        assert_eq!(wnid_index("N01440764"), Some(0), "any case");
        assert_eq!(wnid_index("n00000000"), None);
        assert_eq!(wnid_index("tabby"), None);
    }
}
