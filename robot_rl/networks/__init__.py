"""Networks: MLPs and the batched critic ensemble, the tanh-Gaussian policy, ResNet-10 and the encoder."""
from robot_rl.networks.encoder import EncoderConfig, ObservationEncoder, precompute_features
from robot_rl.networks.mlp import MLP, EnsembleMLP
from robot_rl.networks.policy import TanhGaussianPolicy
from robot_rl.networks.resnet import ResNet10, load_backbone_weights

__all__ = ["EncoderConfig", "EnsembleMLP", "MLP", "ObservationEncoder", "ResNet10",
           "TanhGaussianPolicy", "load_backbone_weights", "precompute_features"]
