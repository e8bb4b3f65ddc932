"""DrQ random shift: bounded by the pad, independent per sample, replicate borders, no loop."""
import torch

from robot_rl.augment import random_shift


def _coordinate_images(b: int, h: int = 16, w: int = 16) -> torch.Tensor:
    """Pixel (i, j) holds (i, j, sample index): a shift is readable straight from the output."""
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = torch.stack([ii, jj, torch.zeros_like(ii)], -1)
    imgs = img.expand(b, h, w, 3).clone()
    imgs[..., 2] = torch.arange(b).view(b, 1, 1)
    return imgs.to(torch.uint8)


def test_given_shift_moves_content_and_replicates_borders():
    imgs = _coordinate_images(2)
    out = random_shift(imgs, pad=4, shifts=torch.tensor([[2, -3], [0, 0]]))
    # interior: out[i, j] = img[i + 2, j - 3]
    assert out[0, 5, 7, 0] == 7 and out[0, 5, 7, 1] == 4
    # bottom rows replicate the last row; left columns replicate the first column
    assert (out[0, 14:, :, 0] == 15).all()
    assert (out[0, :, :3, 1] == 0).all()
    assert torch.equal(out[1], imgs[1])  # zero shift is the identity
    assert out.dtype == torch.uint8 and out.shape == imgs.shape


def test_random_shift_is_bounded_by_pad_and_independent_per_sample():
    b, pad = 256, 4
    imgs = _coordinate_images(b)
    out = random_shift(imgs, pad=pad, generator=torch.Generator().manual_seed(0))
    # the centre pixel (8, 8) never hits the border for |shift| <= 4, so it reveals the shift
    dy = out[:, 8, 8, 0].long() - 8
    dx = out[:, 8, 8, 1].long() - 8
    assert dy.abs().max() <= pad and dx.abs().max() <= pad
    assert torch.equal(out[..., 2], imgs[..., 2])  # each sample keeps its own content
    shifts = set(zip(dy.tolist(), dx.tolist()))
    assert len(shifts) > 40  # 81 possible shifts; per-sample draws cover many of them
    assert dy.min() == -pad and dy.max() == pad
    # the whole image moved rigidly: every interior pixel agrees with the centre's shift
    assert torch.equal(out[:, 6, 9, 0].long(), (6 + dy).clamp(0, 15))


def test_obs_and_next_obs_draws_differ_and_generator_reproduces():
    imgs = _coordinate_images(64)
    g = torch.Generator().manual_seed(1)
    a, b = random_shift(imgs, 4, g), random_shift(imgs, 4, g)
    assert not torch.equal(a, b)  # successive draws (obs, then next_obs) are independent
    g2 = torch.Generator().manual_seed(1)
    assert torch.equal(random_shift(imgs, 4, g2), a)


def test_pad_zero_is_identity_and_bad_shapes_raise():
    imgs = _coordinate_images(3)
    assert torch.equal(random_shift(imgs, pad=0), imgs)
    for bad in (imgs[0], imgs[None]):
        try:
            random_shift(bad, 4)
        except ValueError as e:
            assert "(B, H, W, C)" in str(e)
        else:
            raise AssertionError("expected ValueError")
