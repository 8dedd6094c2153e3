import numpy as np
import pytest

from cpbench.segment import normalize


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_streamed_percentiles_equal_numpys_on_the_whole(dtype: type) -> None:
    rng = np.random.default_rng(0)
    img = rng.gamma(2.0, 40.0 if dtype is np.uint8 else 3000.0, (301, 257)).clip(0, np.iinfo(dtype).max).astype(dtype)
    blocks = [img[y:y + 100, x:x + 100] for y in range(0, 301, 100) for x in range(0, 257, 100)]
    got = normalize.percentiles(normalize.histogram(blocks), (0.0, 1.0, 37.5, 99.0, 100.0))
    want = np.percentile(img.astype(np.float64), [0.0, 1.0, 37.5, 99.0, 100.0])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_histograms_need_integer_images() -> None:
    with pytest.raises(TypeError, match="8 or 16 bits"):
        normalize.histogram([np.zeros((4, 4), np.float32)])
    with pytest.raises(ValueError, match="no pixels"):
        normalize.histogram([])
