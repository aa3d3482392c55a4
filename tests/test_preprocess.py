import numpy as np
import torch

from ferkit.data.preprocess import IMAGE_STD, Normalizer, standardize_images


def test_per_image_standardisation():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 48, 48)).astype(np.uint8)
    x = standardize_images(imgs).double()
    assert torch.allclose(x.flatten(1).mean(1), torch.zeros(5, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(
        x.flatten(1).std(1, unbiased=False),
        torch.full((5,), IMAGE_STD, dtype=torch.float64),
        atol=1e-4,
    )


def test_blank_images_stay_finite_and_zero():
    imgs = np.zeros((3, 48, 48), np.uint8)
    imgs[1] = 255
    imgs[2] = 17
    x = standardize_images(imgs)
    assert torch.isfinite(x).all() and (x == 0).all()
    norm = Normalizer.fit(
        np.concatenate(
            [imgs, np.random.default_rng(0).integers(0, 256, (4, 48, 48)).astype(np.uint8)]
        )
    )
    assert torch.isfinite(norm(imgs)).all()


def test_normalizer_fit_apply_round_trip():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(64, 48, 48)).astype(np.uint8)
    norm = Normalizer.fit(imgs, chunk=10)  # chunking must not change the statistics
    y = norm(imgs)
    assert y.shape == (64, 1, 48, 48)
    assert torch.allclose(y.mean(0), torch.zeros(1, 48, 48), atol=1e-4)
    assert torch.allclose(y.std(0, unbiased=False), torch.ones(1, 48, 48), atol=1e-3)
    again = Normalizer.from_state_dict(norm.state_dict())
    assert torch.equal(again(imgs), y)
    assert set(norm.state_dict()) == {"norm.mean", "norm.std"}
    assert norm.state_dict()["norm.mean"].dtype == torch.float32
