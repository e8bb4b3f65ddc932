"""Which image backbone an encoder builds, and why: the one place that decides it.

`EncoderConfig.backbone`:
- "resnet10":   SERL's ResNet-10. Frozen with a pretrained file (`pretrained_backbone`, SERL's and
                HIL-SERL's setting, still the recommended one for hardware); without one it trains
                from scratch, unless `freeze_random_backbone` keeps its random weights fixed.
- "small_conv": a 3-layer conv net at low resolution, trained end to end (networks/small_conv.py).
- "auto":       the pretrained frozen ResNet-10 when its file is configured; otherwise small_conv,
                the choice that learns on a CPU with what a fresh machine has (docs/benchmarks.md,
                "Pixels": a ResNet-10 trained from scratch runs 0.02-0.04 updates/s here).
SACConfig (so `robot-rl train`) defaults to "auto"; a plain EncoderConfig() keeps "resnet10"
(the reward classifier's and the BC agent's).
"""
from __future__ import annotations

from dataclasses import dataclass

BACKBONES = ("auto", "resnet10", "small_conv")


@dataclass(frozen=True)
class BackboneChoice:
    name: str        # "resnet10" or "small_conv"
    frozen: bool     # the critic loss leaves its weights alone
    reason: str      # one line for the log


def choose_backbone(backbone: str, pretrained_backbone: str | None, freeze_backbone: bool,
                    freeze_random_backbone: bool) -> BackboneChoice:
    if backbone not in BACKBONES:
        raise ValueError(f"encoder.backbone = {backbone!r}: must be one of {list(BACKBONES)}")
    if backbone == "small_conv":
        if pretrained_backbone:
            raise ValueError(f"encoder.pretrained_backbone = {pretrained_backbone!r} is a ResNet-10 file, "
                             "but encoder.backbone is small_conv: set backbone to resnet10 or auto")
        return BackboneChoice("small_conv", False, "encoder.backbone is small_conv")
    if pretrained_backbone:
        why = ("its pretrained file is configured (encoder.pretrained_backbone)" if backbone == "auto"
               else "encoder.backbone is resnet10")
        return BackboneChoice("resnet10", freeze_backbone,
                              f"{why}; {'frozen' if freeze_backbone else 'fine-tuned'}")
    if backbone == "auto":
        return BackboneChoice("small_conv", False,
                              "no pretrained ResNet-10 file is configured (encoder.pretrained_backbone), "
                              "and a ResNet-10 trained from scratch is too slow on a CPU; "
                              "docs/pretrained_backbone.md says how to get the file")
    if freeze_random_backbone:
        return BackboneChoice("resnet10", True, "encoder.freeze_random_backbone: fixed random weights")
    return BackboneChoice("resnet10", False, "no pretrained file: trained from scratch")
