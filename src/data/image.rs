//! The one in-memory image type: 8-bit RGB, what PIL's `.convert('RGB')` gives torchvision.

/// An 8-bit RGB image, rows top to bottom, 3 bytes a pixel (PIL mode "RGB").
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RgbImage({}x{})", self.width, self.height)
    }
}

impl RgbImage {
    /// Wraps `data` (length `width * height * 3`); `None` if the length does not match.
    #[must_use]
    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Option<Self> {
        (width.checked_mul(height)?.checked_mul(3)? == data.len()).then_some(Self { width, height, data })
    }

    /// A black image.
    #[must_use]
    pub fn zeros(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }

    /// Width in pixels.
    #[must_use]
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    #[must_use]
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels, `[height][width][3]` flattened.
    #[must_use]
    pub fn as_raw(&self) -> &[u8] {
        &self.data
    }

    /// Takes the pixels out.
    #[must_use]
    pub fn into_raw(self) -> Vec<u8> {
        self.data
    }

    /// Row `y`, `width * 3` bytes.
    #[must_use]
    pub fn row(&self, y: usize) -> &[u8] {
        &self.data[y * self.width * 3..(y + 1) * self.width * 3]
    }

    /// Row `y`, mutable.
    pub fn row_mut(&mut self, y: usize) -> &mut [u8] {
        let w = self.width * 3;
        &mut self.data[y * w..(y + 1) * w]
    }
}
